/* examples/plugins/numeric.c: the numeric plugin (libnumeric.so), for
 * the Monte-Carlo, distance-matrix and cached-pipeline examples.
 *
 *   num.pi_hits(seed, n)          int: of n random points in the unit
 *                                 square, how many fall in the quarter
 *                                 circle (splitmix64 from seed)
 *   num.pi(hits, n)               float: 4 * sum(hits) / (len(hits) * n)
 *   num.points(seed, n, d)        f64 [n, d], uniform in [0, 1)
 *   num.dist_block(p, start, stop) f64 [stop - start, n]: Euclidean
 *                                 distances of rows start..stop-1 of p to
 *                                 every row of p
 *   num.vstack(blocks...)         the blocks' rows stacked (or one list)
 *   num.stats(a)                  {"shape", "min", "max", "mean"} of a
 *                                 f64 array
 *   num.slow(x, ms)               x * x after ms milliseconds: a stand-in
 *                                 for an expensive step
 *
 * All pure.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tgraph/registry.h"

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15u);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
  return z ^ (z >> 31);
}

static double uniform(uint64_t *s) {
  return (double)(splitmix(s) >> 11) * (1.0 / 9007199254740992.0);
}

static bool ints(tg_value *const *args, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (tg_value_type(args[i]) != TG_INT) return false;
  return true;
}

static int pi_hits(tg_task_ctx *ctx, tg_value *const *args, size_t nargs,
                   tg_value **out) {
  if (!ints(args, nargs) || tg_value_int(args[1]) < 0)
    return tg_task_fail(ctx, TG_ETYPE, "num.pi_hits: needs (seed, n) ints");
  uint64_t s = (uint64_t)tg_value_int(args[0]);
  int64_t n = tg_value_int(args[1]), hits = 0;
  for (int64_t i = 0; i < n; i++) {
    double x = uniform(&s), y = uniform(&s);
    hits += x * x + y * y < 1.0;
  }
  *out = tg_int(hits);
  return TG_OK;
}

static int pi(tg_task_ctx *ctx, tg_value *const *args, size_t nargs,
              tg_value **out) {
  (void)nargs;
  const tg_value *h = args[0];
  if (tg_value_type(h) != TG_LIST || tg_list_len(h) == 0 ||
      tg_value_type(args[1]) != TG_INT || tg_value_int(args[1]) <= 0)
    return tg_task_fail(ctx, TG_ETYPE, "num.pi: needs (list of hits, n)");
  double sum = 0;
  for (size_t i = 0; i < tg_list_len(h); i++)
    sum += (double)tg_value_int(tg_list_get(h, i));
  *out = tg_float(4.0 * sum /
                  ((double)tg_list_len(h) * (double)tg_value_int(args[1])));
  return TG_OK;
}

static int points(tg_task_ctx *ctx, tg_value *const *args, size_t nargs,
                  tg_value **out) {
  if (!ints(args, nargs) || tg_value_int(args[1]) < 0 ||
      tg_value_int(args[2]) < 1)
    return tg_task_fail(ctx, TG_ETYPE, "num.points: needs (seed, n, d)");
  uint64_t s = (uint64_t)tg_value_int(args[0]);
  int64_t shape[2] = {tg_value_int(args[1]), tg_value_int(args[2])};
  tg_value *a = tg_ndarray_new(TG_DT_F64, 2, shape);
  if (a == NULL) return tg_task_fail(ctx, TG_ENOMEM, "out of memory");
  double *p = tg_ndarray_data_mut(a);
  for (size_t i = 0; i < tg_ndarray_size(a); i++) p[i] = uniform(&s);
  *out = a;
  return TG_OK;
}

static bool is_matrix(const tg_value *a) {
  return tg_value_type(a) == TG_NDARRAY && tg_ndarray_dtype(a) == TG_DT_F64 &&
         tg_ndarray_ndim(a) == 2;
}

static int dist_block(tg_task_ctx *ctx, tg_value *const *args, size_t nargs,
                      tg_value **out) {
  const tg_value *p = args[0];
  if (!is_matrix(p) || !ints(args + 1, nargs - 1))
    return tg_task_fail(ctx, TG_ETYPE, "num.dist_block: needs (f64 [n, d], "
                        "start, stop)");
  int64_t n = tg_ndarray_shape(p)[0], d = tg_ndarray_shape(p)[1];
  int64_t lo = tg_value_int(args[1]), hi = tg_value_int(args[2]);
  if (lo < 0 || hi > n || lo > hi)
    return tg_task_fail(ctx, TG_ERANGE, "num.dist_block: rows %lld..%lld of "
                        "%lld", (long long)lo, (long long)hi, (long long)n);
  int64_t shape[2] = {hi - lo, n};
  tg_value *a = tg_ndarray_new(TG_DT_F64, 2, shape);
  if (a == NULL) return tg_task_fail(ctx, TG_ENOMEM, "out of memory");
  const double *x = tg_ndarray_data(p);
  double *o = tg_ndarray_data_mut(a);
  for (int64_t i = lo; i < hi; i++)
    for (int64_t j = 0; j < n; j++) {
      double s = 0;
      for (int64_t k = 0; k < d; k++) {
        double t = x[i * d + k] - x[j * d + k];
        s += t * t;
      }
      o[(i - lo) * n + j] = sqrt(s);
    }
  *out = a;
  return TG_OK;
}

static int vstack(tg_task_ctx *ctx, tg_value *const *args, size_t nargs,
                  tg_value **out) {
  if (nargs == 1 && tg_value_type(args[0]) == TG_LIST) {
    const tg_value *list = args[0];
    args = tg_list_items(list);
    nargs = tg_list_len(list);
  }
  int64_t rows = 0, cols = -1;
  for (size_t i = 0; i < nargs; i++) {
    if (!is_matrix(args[i]) || (cols >= 0 && tg_ndarray_shape(args[i])[1] != cols))
      return tg_task_fail(ctx, TG_ETYPE, "num.vstack: block %zu is not an "
                          "f64 matrix of matching width", i + 1);
    cols = tg_ndarray_shape(args[i])[1];
    rows += tg_ndarray_shape(args[i])[0];
  }
  int64_t shape[2] = {rows, cols < 0 ? 0 : cols};
  tg_value *a = tg_ndarray_new(TG_DT_F64, 2, shape);
  if (a == NULL) return tg_task_fail(ctx, TG_ENOMEM, "out of memory");
  char *o = tg_ndarray_data_mut(a);
  for (size_t i = 0; i < nargs; i++) {
    size_t nb = tg_ndarray_nbytes(args[i]);
    if (nb > 0) memcpy(o, tg_ndarray_data(args[i]), nb);
    o += nb;
  }
  *out = a;
  return TG_OK;
}

static int stats(tg_task_ctx *ctx, tg_value *const *args, size_t nargs,
                 tg_value **out) {
  (void)nargs;
  const tg_value *a = args[0];
  if (tg_value_type(a) != TG_NDARRAY || tg_ndarray_dtype(a) != TG_DT_F64 ||
      tg_ndarray_size(a) == 0)
    return tg_task_fail(ctx, TG_ETYPE, "num.stats: needs a non-empty f64 array");
  const double *x = tg_ndarray_data(a);
  size_t n = tg_ndarray_size(a);
  double lo = x[0], hi = x[0], sum = 0;
  for (size_t i = 0; i < n; i++) {
    lo = x[i] < lo ? x[i] : lo;
    hi = x[i] > hi ? x[i] : hi;
    sum += x[i];
  }
  tg_value *shape = tg_list_alloc((size_t)tg_ndarray_ndim(a));
  for (int i = 0; shape != NULL && i < tg_ndarray_ndim(a); i++)
    tg_list_init_item(shape, (size_t)i, tg_int(tg_ndarray_shape(a)[i]));
  tg_value *m = tg_map_new(4);
  if (m == NULL || shape == NULL) {
    tg_value_unref(m);
    tg_value_unref(shape);
    return tg_task_fail(ctx, TG_ENOMEM, "out of memory");
  }
  tg_map_put_c(m, "shape", shape);
  tg_map_put_c(m, "min", tg_float(lo));
  tg_map_put_c(m, "max", tg_float(hi));
  tg_map_put_c(m, "mean", tg_float(sum / (double)n));
  *out = m;
  return TG_OK;
}

static int slow(tg_task_ctx *ctx, tg_value *const *args, size_t nargs,
                tg_value **out) {
  if (!ints(args, nargs) || tg_value_int(args[1]) < 0)
    return tg_task_fail(ctx, TG_ETYPE, "num.slow: needs (x, ms) ints");
  int64_t ms = tg_value_int(args[1]);
  for (int64_t t = 0; t < ms; t += 10) {
    if (tg_task_cancelled(ctx))
      return tg_task_fail(ctx, TG_ECANCELED, "num.slow: cancelled");
    struct timespec d = {0, (long)(ms - t < 10 ? ms - t : 10) * 1000000L};
    nanosleep(&d, NULL);
  }
  int64_t x = tg_value_int(args[0]);
  *out = tg_int(x * x);
  return TG_OK;
}

int tg_plugin_init(tg_registry *reg);

int tg_plugin_init(tg_registry *reg) {
#define DEF(NAME, FN, N, DOC)                                              \
  {.version = TG_FUNC_DEF_V1, .name = NAME, .fn_version = "1", .fn = FN, \
   .flags = TG_FUNC_PURE, .nargs = N, .doc = DOC}
  static const tg_func_def defs[] = {
      DEF("num.pi_hits", pi_hits, 2, "num.pi_hits(seed, n): hits in the circle"),
      DEF("num.pi", pi, 2, "num.pi(hits, n): the estimate of pi"),
      DEF("num.points", points, 3, "num.points(seed, n, d): random points"),
      DEF("num.dist_block", dist_block, 3, "num.dist_block(p, start, stop)"),
      DEF("num.vstack", vstack, -1, "num.vstack(blocks...): stacked rows"),
      DEF("num.stats", stats, 1, "num.stats(a): shape, min, max, mean"),
      DEF("num.slow", slow, 2, "num.slow(x, ms): x * x, slowly"),
  };
#undef DEF
  for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
    int rc = tg_registry_add(reg, &defs[i], NULL);
    if (rc != TG_OK) return rc;
  }
  return TG_OK;
}
