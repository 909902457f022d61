/* tests/test_funcs.h: task functions shared by the graph, scheduler,
 * executor and backend suites (and the graph benchmark), with call
 * counters the tests read back.
 *
 * Header-only, static functions: each program gets its own copy of the
 * counters. Criterion runs every test in its own process, so counters
 * start at zero in each test. Nothing here uses Criterion.
 *
 * Registered by tgt_registry_new() (all with an exact argument count
 * unless noted, all pure unless noted):
 *   add(a, b)          a + b (ints, wrapping)
 *   inc(a)             a + 1
 *   sum(list)          sum of a list of ints
 *   sum_args(...)      sum of int arguments (any count)
 *   pack(...)          list of the arguments (any count)
 *   pack_map(...)      map {"k0": arg0, "k1": arg1, ...} (any count)
 *   identity(x)        x
 *   fail(...)          always fails: TG_EINVAL "always fails"
 *   fail_first(n, x)   fails on attempts 0..n-1 ("attempt K fails"), then x
 *   counted(x)         x; counts calls that start after a failure
 *   sleep_ms(ms)       impure; sleeps, polling tg_task_cancelled() every
 *                      millisecond; TG_ECANCELED when cancelled, else ms;
 *                      counts calls that start after a failure
 *   gate(id)           impure; marks gate `id` started, waits until the
 *                      test opens it (or the task is cancelled), returns id
 *   mc_pi(seed, n)     Monte-Carlo estimate of pi (float) from n samples
 *   leaf(i)            a one-element i64 array holding i, counted live
 *                      until its last reference goes
 *   combine(a, b)      a counted array holding a[0] + b[0]
 *   whoami()           impure; the running task's key (str)
 *   worker()           impure; the running worker's index (int)
 *   logline(x)         impure; logs "value N" with tg_task_log, returns x
 *   seq(...)           impure; the call's rank: 0 for the first seq call
 *                      of the process, 1 for the next, ... (ignores args)
 */
#ifndef TG_TEST_FUNCS_H
#define TG_TEST_FUNCS_H

#include <locale.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "tgraph/graph.h"
#include "tgraph/registry.h"
#include "tgraph/serial.h"
#include "tgraph/value.h"

#define TGT_UNUSED __attribute__((unused))

enum tgt_fn_id {
  TGT_ADD, TGT_INC, TGT_SUM, TGT_SUM_ARGS, TGT_PACK, TGT_PACK_MAP,
  TGT_IDENTITY, TGT_FAIL, TGT_FAIL_FIRST, TGT_COUNTED, TGT_SLEEP, TGT_GATE,
  TGT_MC_PI, TGT_LEAF, TGT_COMBINE, TGT_WHOAMI, TGT_WORKER, TGT_LOGLINE, TGT_SEQ,
  TGT_NFN
};

#define TGT_GATES 16

/* Everything the functions record, for the tests to read. */
typedef struct tgt_state {
  atomic_long calls[TGT_NFN];     /* calls per function, retries included */
  atomic_int fail_seen;           /* a fail/fail_first attempt has failed */
  atomic_long after_fail;         /* counted() calls started after that */
  atomic_long live;               /* leaf/combine arrays alive now */
  atomic_long peak;               /* most of them alive at once */
  atomic_int gate_open[TGT_GATES];
  atomic_int gate_started[TGT_GATES];
  atomic_int sleep_cancelled;     /* sleep_ms calls that saw cancellation */
  atomic_long seq;                /* next rank seq() hands out */
} tgt_state;

static tgt_state tgt TGT_UNUSED;

static inline long tgt_calls(enum tgt_fn_id id) {
  return atomic_load(&tgt.calls[id]);
}

static inline void tgt_count(enum tgt_fn_id id) {
  atomic_fetch_add_explicit(&tgt.calls[id], 1, memory_order_relaxed);
}

static inline void tgt_sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

/* Switch LC_NUMERIC to a decimal-comma locale (de_DE, built with localedef
 * into a temporary directory): for tests that text and numbers do not
 * depend on the program's locale. False when it cannot be made. */
static inline bool tgt_decimal_comma_locale(void) {
  char dir[] = "/tmp/tg_locale_XXXXXX", cmd[200];
  if (!mkdtemp(dir)) return false;
  snprintf(cmd, sizeof cmd,
           "localedef -i de_DE -f UTF-8 %s/de_DE.UTF-8 >/dev/null 2>&1", dir);
  int made = system(cmd);
  setenv("LOCPATH", dir, 1);
  bool comma = made == 0 && setlocale(LC_NUMERIC, "de_DE.UTF-8") != NULL;
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir); /* the locale stays loaded */
  return system(cmd) == 0 && comma;
}

static inline double tgt_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Fails the task unless args[i] is an int. */
static inline int tgt_want_int(tg_task_ctx *ctx, tg_value *const *args,
                               size_t i) {
  if (tg_value_type(args[i]) == TG_INT) return TG_OK;
  return tg_task_fail(ctx, TG_ETYPE, "argument %zu: expected int, got %s", i,
                      tg_type_name(tg_value_type(args[i])));
}

/* Wrapping addition: random graphs may add large constants. */
static inline int64_t tgt_wrap_add(int64_t a, int64_t b) {
  return (int64_t)((uint64_t)a + (uint64_t)b);
}

/* n f64 values v, v + 0.5, v + 1, ... (NULL when memory runs out). */
static inline tg_value *tgt_f64_array(int64_t n, double v) {
  tg_value *a = tg_ndarray_new(TG_DT_F64, 1, &n);
  double *d = a ? tg_ndarray_data_mut(a) : NULL;
  for (int64_t i = 0; d && i < n; i++) d[i] = v + (double)i * 0.5;
  return a;
}

/* The encoding (tg_encode's, malloc'ed, *len bytes) of the map {"k1": 1,
 * "k2": 2, "k2": 3}: its third key made the same as its second, with its
 * checksums made right again, so that only a decoder sees what is wrong
 * ("duplicate map key"). NULL when memory runs out. */
static inline void *tgt_duplicate_key_encoding(size_t *len) {
  tg_value *m = tg_map_new(0);
  tg_map_put_c(m, "k1", tg_int(1));
  tg_map_put_c(m, "k2", tg_int(2));
  tg_map_put_c(m, "k3", tg_int(3));
  void *enc = NULL;
  int rc = tg_encode(m, NULL, &enc, len, NULL);
  tg_value_unref(m);
  if (rc != TG_OK) return NULL;
  uint8_t *p = enc;
  uint64_t meta_len;
  memcpy(&meta_len, p + 8, 8);
  uint8_t *k3 = memmem(p + 64, meta_len, "k3", 2);
  if (!k3) {
    free(enc);
    return NULL;
  }
  k3[1] = '2';
  uint64_t mh = XXH3_64bits(p + 64, meta_len), hh; /* the header's fields */
  memcpy(p + 32, &mh, 8);
  hh = XXH3_64bits(p, 48);
  memcpy(p + 48, &hh, 8);
  return enc;
}

/* A binary tree reduction: n leaves leaf(i) for i = 0 .. n - 1 (n a power
 * of two), summed pairwise by add up to one root, returned (TG_NODE_NONE
 * when memory runs out). */
static inline tg_node tgt_add_tree(tg_graph *g, const char *leaf, int n) {
  tg_node *lv = malloc((size_t)n * sizeof *lv);
  if (!lv) return TG_NODE_NONE;
  for (int i = 0; i < n; i++) lv[i] = tg_call(g, leaf, 1, tg_arg_value(tg_int(i)));
  for (int m = n; m > 1; m /= 2)
    for (int i = 0; i < m / 2; i++)
      lv[i] = tg_call(g, "add", 2, tg_arg_node(lv[2 * i]), tg_arg_node(lv[2 * i + 1]));
  tg_node root = lv[0];
  free(lv);
  return root;
}

static inline int tgt_result(tg_value *v, tg_value **out) {
  if (!v) return TG_ENOMEM;
  *out = v;
  return TG_OK;
}

static inline int tgt_fn_add(tg_task_ctx *ctx, tg_value *const *args,
                             size_t nargs, tg_value **out) {
  (void)nargs;
  tgt_count(TGT_ADD);
  int rc;
  if ((rc = tgt_want_int(ctx, args, 0)) || (rc = tgt_want_int(ctx, args, 1)))
    return rc;
  return tgt_result(
      tg_int(tgt_wrap_add(tg_value_int(args[0]), tg_value_int(args[1]))), out);
}

static inline int tgt_fn_inc(tg_task_ctx *ctx, tg_value *const *args,
                             size_t nargs, tg_value **out) {
  (void)nargs;
  tgt_count(TGT_INC);
  int rc = tgt_want_int(ctx, args, 0);
  if (rc) return rc;
  return tgt_result(tg_int(tgt_wrap_add(tg_value_int(args[0]), 1)), out);
}

static inline int tgt_fn_sum(tg_task_ctx *ctx, tg_value *const *args,
                             size_t nargs, tg_value **out) {
  (void)nargs;
  tgt_count(TGT_SUM);
  if (tg_value_type(args[0]) != TG_LIST)
    return tg_task_fail(ctx, TG_ETYPE, "expected a list, got %s",
                        tg_type_name(tg_value_type(args[0])));
  int64_t s = 0;
  size_t n = tg_list_len(args[0]);
  tg_value *const *items = tg_list_items(args[0]);
  for (size_t i = 0; i < n; i++) {
    if (tg_value_type(items[i]) != TG_INT)
      return tg_task_fail(ctx, TG_ETYPE, "item %zu is not an int", i);
    s = tgt_wrap_add(s, tg_value_int(items[i]));
  }
  return tgt_result(tg_int(s), out);
}

static inline int tgt_fn_sum_args(tg_task_ctx *ctx, tg_value *const *args,
                                  size_t nargs, tg_value **out) {
  tgt_count(TGT_SUM_ARGS);
  int64_t s = 0;
  for (size_t i = 0; i < nargs; i++) {
    int rc = tgt_want_int(ctx, args, i);
    if (rc) return rc;
    s = tgt_wrap_add(s, tg_value_int(args[i]));
  }
  return tgt_result(tg_int(s), out);
}

static inline int tgt_fn_pack(tg_task_ctx *ctx, tg_value *const *args,
                              size_t nargs, tg_value **out) {
  (void)ctx;
  tgt_count(TGT_PACK);
  tg_value *l = tg_list_alloc(nargs);
  if (!l) return TG_ENOMEM;
  for (size_t i = 0; i < nargs; i++) {
    int rc = tg_list_init_item(l, i, tg_value_ref(args[i]));
    if (rc) {
      tg_value_unref(l);
      return rc;
    }
  }
  *out = l;
  return TG_OK;
}

static inline int tgt_fn_pack_map(tg_task_ctx *ctx, tg_value *const *args,
                                  size_t nargs, tg_value **out) {
  (void)ctx;
  tgt_count(TGT_PACK_MAP);
  tg_value *m = tg_map_new(nargs);
  if (!m) return TG_ENOMEM;
  for (size_t i = 0; i < nargs; i++) {
    char key[32];
    snprintf(key, sizeof key, "k%zu", i);
    int rc = tg_map_put_c(m, key, tg_value_ref(args[i]));
    if (rc) {
      tg_value_unref(m);
      return rc;
    }
  }
  *out = m;
  return TG_OK;
}

static inline int tgt_fn_identity(tg_task_ctx *ctx, tg_value *const *args,
                                  size_t nargs, tg_value **out) {
  (void)ctx;
  (void)nargs;
  tgt_count(TGT_IDENTITY);
  *out = tg_value_ref(args[0]);
  return TG_OK;
}

static inline int tgt_fn_fail(tg_task_ctx *ctx, tg_value *const *args,
                              size_t nargs, tg_value **out) {
  (void)args;
  (void)nargs;
  (void)out;
  tgt_count(TGT_FAIL);
  atomic_store(&tgt.fail_seen, 1);
  return tg_task_fail(ctx, TG_EINVAL, "always fails");
}

static inline int tgt_fn_fail_first(tg_task_ctx *ctx, tg_value *const *args,
                                    size_t nargs, tg_value **out) {
  (void)nargs;
  tgt_count(TGT_FAIL_FIRST);
  int rc = tgt_want_int(ctx, args, 0);
  if (rc) return rc;
  int attempt = tg_task_attempt(ctx);
  if (attempt < tg_value_int(args[0])) {
    atomic_store(&tgt.fail_seen, 1);
    return tg_task_fail(ctx, TG_EIO, "attempt %d fails", attempt);
  }
  *out = tg_value_ref(args[1]);
  return TG_OK;
}

static inline int tgt_fn_counted(tg_task_ctx *ctx, tg_value *const *args,
                                 size_t nargs, tg_value **out) {
  (void)ctx;
  (void)nargs;
  tgt_count(TGT_COUNTED);
  if (atomic_load(&tgt.fail_seen)) atomic_fetch_add(&tgt.after_fail, 1);
  *out = tg_value_ref(args[0]);
  return TG_OK;
}

static inline int tgt_fn_sleep(tg_task_ctx *ctx, tg_value *const *args,
                               size_t nargs, tg_value **out) {
  (void)nargs;
  tgt_count(TGT_SLEEP);
  int rc = tgt_want_int(ctx, args, 0);
  if (rc) return rc;
  if (atomic_load(&tgt.fail_seen)) atomic_fetch_add(&tgt.after_fail, 1);
  int64_t ms = tg_value_int(args[0]);
  for (int64_t i = 0; i < ms; i++) {
    if (tg_task_cancelled(ctx)) {
      atomic_fetch_add(&tgt.sleep_cancelled, 1);
      return tg_task_fail(ctx, TG_ECANCELED, "cancelled after %lld ms",
                          (long long)i);
    }
    tgt_sleep_ms(1);
  }
  return tgt_result(tg_int(ms), out);
}

static inline int tgt_fn_gate(tg_task_ctx *ctx, tg_value *const *args,
                              size_t nargs, tg_value **out) {
  (void)nargs;
  tgt_count(TGT_GATE);
  int rc = tgt_want_int(ctx, args, 0);
  if (rc) return rc;
  int64_t id = tg_value_int(args[0]);
  if (id < 0 || id >= TGT_GATES)
    return tg_task_fail(ctx, TG_ERANGE, "no gate %lld", (long long)id);
  atomic_store(&tgt.gate_started[id], 1);
  while (!atomic_load(&tgt.gate_open[id])) {
    if (tg_task_cancelled(ctx))
      return tg_task_fail(ctx, TG_ECANCELED, "gate %lld cancelled",
                          (long long)id);
    tgt_sleep_ms(1);
  }
  return tgt_result(tg_int(id), out);
}

static inline void tgt_gate_open(int id) { atomic_store(&tgt.gate_open[id], 1); }

/* Wait (at most 10 s) until gate `id`'s task has started; true if it did. */
static inline bool tgt_gate_wait_started(int id) {
  for (int i = 0; i < 10000; i++) {
    if (atomic_load(&tgt.gate_started[id])) return true;
    tgt_sleep_ms(1);
  }
  return false;
}

/* splitmix64: a seed gives the same stream everywhere. */
static inline uint64_t tgt_rand(uint64_t *s) {
  uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

/* Uniform in 0..n-1 (n > 0). */
static inline uint64_t tgt_below(uint64_t *s, uint64_t n) {
  return tgt_rand(s) % n;
}

/* 4 * (points of the unit square inside the quarter circle) / samples. */
static inline double tgt_mc_pi(uint64_t seed, int64_t samples) {
  uint64_t s = seed, inside = 0;
  for (int64_t i = 0; i < samples; i++) {
    double x = (double)(tgt_rand(&s) >> 11) * 0x1.0p-53;
    double y = (double)(tgt_rand(&s) >> 11) * 0x1.0p-53;
    inside += x * x + y * y < 1.0;
  }
  return samples > 0 ? 4.0 * (double)inside / (double)samples : 0.0;
}

static inline int tgt_fn_mc_pi(tg_task_ctx *ctx, tg_value *const *args,
                               size_t nargs, tg_value **out) {
  (void)nargs;
  tgt_count(TGT_MC_PI);
  int rc;
  if ((rc = tgt_want_int(ctx, args, 0)) || (rc = tgt_want_int(ctx, args, 1)))
    return rc;
  return tgt_result(tg_float(tgt_mc_pi((uint64_t)tg_value_int(args[0]),
                                       tg_value_int(args[1]))),
                    out);
}

/* Counted arrays: the release callback runs when the engine drops the last
 * reference, so tgt.live is the number of such values alive. */
static inline void tgt_live_release(void *ctx, void *data) {
  (void)ctx;
  free(data);
  atomic_fetch_sub(&tgt.live, 1);
}

static inline tg_value *tgt_live_array(int64_t x) {
  int64_t *data = aligned_alloc(TG_ARRAY_ALIGN, TG_ARRAY_ALIGN);
  if (!data) return NULL;
  data[0] = x;
  long now = atomic_fetch_add(&tgt.live, 1) + 1;
  long peak = atomic_load(&tgt.peak);
  while (now > peak && !atomic_compare_exchange_weak(&tgt.peak, &peak, now)) {
  }
  int64_t shape[1] = {1};
  return tg_ndarray_wrap(TG_DT_I64, 1, shape, data, tgt_live_release, NULL);
}

static inline int tgt_fn_leaf(tg_task_ctx *ctx, tg_value *const *args,
                              size_t nargs, tg_value **out) {
  (void)nargs;
  tgt_count(TGT_LEAF);
  int rc = tgt_want_int(ctx, args, 0);
  if (rc) return rc;
  return tgt_result(tgt_live_array(tg_value_int(args[0])), out);
}

static inline int64_t tgt_array_first(const tg_value *v) {
  if (tg_value_type(v) != TG_NDARRAY || tg_ndarray_dtype(v) != TG_DT_I64 ||
      tg_ndarray_size(v) < 1)
    return INT64_MIN;
  return ((const int64_t *)tg_ndarray_data(v))[0];
}

static inline int tgt_fn_combine(tg_task_ctx *ctx, tg_value *const *args,
                                 size_t nargs, tg_value **out) {
  (void)nargs;
  tgt_count(TGT_COMBINE);
  int64_t a = tgt_array_first(args[0]), b = tgt_array_first(args[1]);
  if (a == INT64_MIN || b == INT64_MIN)
    return tg_task_fail(ctx, TG_ETYPE, "expected two i64 arrays");
  return tgt_result(tgt_live_array(a + b), out);
}

static inline int tgt_fn_whoami(tg_task_ctx *ctx, tg_value *const *args,
                                size_t nargs, tg_value **out) {
  (void)args;
  (void)nargs;
  tgt_count(TGT_WHOAMI);
  return tgt_result(tg_str_c(tg_task_key(ctx)), out);
}

static inline int tgt_fn_worker(tg_task_ctx *ctx, tg_value *const *args,
                                size_t nargs, tg_value **out) {
  (void)args;
  (void)nargs;
  tgt_count(TGT_WORKER);
  return tgt_result(tg_int(tg_task_worker(ctx)), out);
}

static inline int tgt_fn_logline(tg_task_ctx *ctx, tg_value *const *args,
                                 size_t nargs, tg_value **out) {
  (void)nargs;
  tgt_count(TGT_LOGLINE);
  int rc = tgt_want_int(ctx, args, 0);
  if (rc) return rc;
  tg_task_log(ctx, "value %lld", (long long)tg_value_int(args[0]));
  *out = tg_value_ref(args[0]);
  return TG_OK;
}

static inline int tgt_fn_seq(tg_task_ctx *ctx, tg_value *const *args,
                             size_t nargs, tg_value **out) {
  (void)ctx;
  (void)args;
  (void)nargs;
  tgt_count(TGT_SEQ);
  return tgt_result(tg_int(atomic_fetch_add(&tgt.seq, 1)), out);
}

typedef struct tgt_def {
  const char *name;
  tg_task_fn fn;
  int nargs;
  unsigned flags;
} tgt_def;

static const tgt_def tgt_defs[] TGT_UNUSED = {
    {"add", tgt_fn_add, 2, TG_FUNC_PURE},
    {"inc", tgt_fn_inc, 1, TG_FUNC_PURE},
    {"sum", tgt_fn_sum, 1, TG_FUNC_PURE},
    {"sum_args", tgt_fn_sum_args, -1, TG_FUNC_PURE},
    {"pack", tgt_fn_pack, -1, TG_FUNC_PURE},
    {"pack_map", tgt_fn_pack_map, -1, TG_FUNC_PURE},
    {"identity", tgt_fn_identity, 1, TG_FUNC_PURE},
    {"fail", tgt_fn_fail, -1, TG_FUNC_PURE},
    {"fail_first", tgt_fn_fail_first, 2, TG_FUNC_PURE},
    {"counted", tgt_fn_counted, 1, TG_FUNC_PURE},
    {"sleep_ms", tgt_fn_sleep, 1, 0},
    {"gate", tgt_fn_gate, 1, 0},
    {"mc_pi", tgt_fn_mc_pi, 2, TG_FUNC_PURE},
    {"leaf", tgt_fn_leaf, 1, TG_FUNC_PURE},
    {"combine", tgt_fn_combine, 2, TG_FUNC_PURE},
    {"whoami", tgt_fn_whoami, 0, 0},
    {"worker", tgt_fn_worker, 0, 0},
    {"logline", tgt_fn_logline, 1, 0},
    {"seq", tgt_fn_seq, -1, 0},
};

/* A registry holding every function above. NULL on failure. */
/* tgt_add(reg, name, fn, nargs, flags): one more function, version "1",
 * for a test file's own functions; TG_OK or tg_registry_add's error. */
static inline int tgt_add(tg_registry *reg, const char *name, tg_task_fn fn, int nargs,
                          unsigned flags) {
  tg_func_def d = {.version = TG_FUNC_DEF_V1, .name = name, .fn_version = "1",
                   .fn = fn, .flags = flags, .nargs = nargs};
  return tg_registry_add(reg, &d, NULL);
}

/* A function (any arguments) returning the pid of the process calling it:
 * which worker ran a task. Not in tgt_registry_new's set: a test of
 * processes registers it with tgt_add. */
static inline int tgt_fn_pid(tg_task_ctx *ctx, tg_value *const *args, size_t nargs,
                             tg_value **out) {
  (void)ctx, (void)args, (void)nargs;
  *out = tg_int(getpid());
  return *out ? TG_OK : TG_ENOMEM;
}

static inline tg_registry *tgt_registry_new(void) {
  tg_registry *reg = NULL;
  if (tg_registry_new(&reg) != TG_OK) return NULL;
  for (size_t i = 0; i < sizeof tgt_defs / sizeof tgt_defs[0]; i++) {
    tg_func_def def = {.version = TG_FUNC_DEF_V1, .name = tgt_defs[i].name,
                       .fn_version = "1", .fn = tgt_defs[i].fn,
                       .flags = tgt_defs[i].flags, .nargs = tgt_defs[i].nargs};
    if (tg_registry_add(reg, &def, NULL) != TG_OK) {
      tg_registry_free(reg);
      return NULL;
    }
  }
  return reg;
}

/* Compute options for a backend name and worker count. */
static inline tg_compute_opts tgt_opts(const char *backend, unsigned workers,
                                       tg_compute_stats *stats) {
  tg_compute_opts o;
  memset(&o, 0, sizeof o);
  o.version = TG_COMPUTE_OPTS_V1;
  o.scheduler = backend;
  o.workers = workers;
  o.stats = stats;
  return o;
}

/* Compute one output as an int; INT64_MIN (and *rc) on failure. */
static inline int64_t tgt_compute_int(tg_graph *g, tg_node n,
                                      const tg_compute_opts *o, int *rc) {
  tg_value *v = NULL;
  *rc = tg_compute(g, &n, 1, o, &v);
  int64_t r = (*rc == TG_OK && tg_value_type(v) == TG_INT) ? tg_value_int(v)
                                                           : INT64_MIN;
  tg_value_unref(v);
  return r;
}

#endif /* TG_TEST_FUNCS_H */
