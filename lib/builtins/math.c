/* lib/builtins/math.c: arithmetic builtins: sum, add, mul, range. Integer
 * results are exact or an error (TG_ERANGE), never wrapped. */
#include "builtins/builtins_internal.h"

typedef struct acc {
  bool is_float;
  int64_t i;
  double d;
} acc;

/* Fold one number into the accumulator (mul when `mul`). */
static int fold(tg_task_ctx *ctx, const char *fn, size_t idx, acc *a,
                const tg_value *v, bool mul) {
  tg_type t = tg_value_type(v);
  if (t != TG_INT && t != TG_FLOAT)
    return tg__bi_type_error(ctx, fn, idx, "an int or float", v);
  if (t == TG_FLOAT && !a->is_float) {
    a->is_float = true;
    a->d = (double)a->i;
  }
  if (a->is_float) {
    double x = t == TG_INT ? (double)tg_value_int(v) : tg_value_float(v);
    a->d = mul ? a->d * x : a->d + x;
    return TG_OK;
  }
  int64_t x = tg_value_int(v), r;
  bool ovf = mul ? __builtin_mul_overflow(a->i, x, &r)
                 : __builtin_add_overflow(a->i, x, &r);
  if (ovf)
    return tg_task_fail(ctx, TG_ERANGE, "%s: integer overflow", fn);
  a->i = r;
  return TG_OK;
}

static int result(acc *a, tg_value **out) {
  *out = a->is_float ? tg_float(a->d) : tg_int(a->i);
  return *out ? TG_OK : TG_ENOMEM;
}

TG__BI(sum) {
  (void)nargs;
  if (tg_value_type(args[0]) != TG_LIST)
    return tg__bi_type_error(ctx, "sum", 0, "a list", args[0]);
  acc a = {false, 0, 0.0};
  size_t n = tg_list_len(args[0]);
  for (size_t i = 0; i < n; i++) {
    const tg_value *v = tg_list_get(args[0], i);
    if (tg_value_type(v) != TG_INT && tg_value_type(v) != TG_FLOAT)
      return tg_task_fail(ctx, TG_ETYPE,
                          "sum: item %zu must be an int or float, not %s", i,
                          tg_type_name(tg_value_type(v)));
    int rc = fold(ctx, "sum", 0, &a, v, false);
    if (rc != TG_OK) return rc;
  }
  return result(&a, out);
}

static int fold_args(tg_task_ctx *ctx, const char *fn, tg_value *const *args,
                     size_t nargs, bool mul, tg_value **out) {
  acc a = {false, mul ? 1 : 0, 0.0};
  for (size_t i = 0; i < nargs; i++) {
    int rc = fold(ctx, fn, i, &a, args[i], mul);
    if (rc != TG_OK) return rc;
  }
  return result(&a, out);
}

TG__BI(add) { return fold_args(ctx, "add", args, nargs, false, out); }
TG__BI(mul) { return fold_args(ctx, "mul", args, nargs, true, out); }

#define RANGE_MAX (UINT64_C(1) << 27) /* items; keeps a typo from eating RAM */

TG__BI(range) {
  if (nargs < 1 || nargs > 3)
    return tg_task_fail(ctx, TG_EINVAL,
                        "range: takes 1 to 3 arguments, got %zu", nargs);
  int64_t p[3] = {0, 0, 1};
  for (size_t i = 0; i < nargs; i++) {
    if (tg_value_type(args[i]) != TG_INT)
      return tg__bi_type_error(ctx, "range", i, "an int", args[i]);
    p[nargs == 1 ? 1 : i] = tg_value_int(args[i]);
  }
  int64_t start = p[0], stop = p[1], step = p[2];
  if (step == 0) return tg_task_fail(ctx, TG_EINVAL, "range: step is 0");
  /* Count in unsigned 64 bits: stop - start may overflow int64. */
  uint64_t span = 0, ustep = step > 0 ? (uint64_t)step : 0 - (uint64_t)step;
  if (step > 0 && stop > start) span = (uint64_t)stop - (uint64_t)start;
  if (step < 0 && stop < start) span = (uint64_t)start - (uint64_t)stop;
  uint64_t n = span / ustep + (span % ustep != 0);
  if (n > RANGE_MAX)
    return tg_task_fail(ctx, TG_ELIMIT, "range: %llu items is too many",
                        (unsigned long long)n);
  tg_value *list = tg_list_alloc((size_t)n);
  if (list == NULL) return tg_task_fail(ctx, TG_ENOMEM, "range: out of memory");
  for (size_t i = 0; i < (size_t)n; i++) {
    tg_value *x =
        tg_int((int64_t)((uint64_t)start + (uint64_t)i * (uint64_t)step));
    if (x == NULL || tg_list_init_item(list, i, x) != TG_OK) {
      tg_value_unref(list);
      return tg_task_fail(ctx, TG_ENOMEM, "range: out of memory");
    }
  }
  *out = list;
  return TG_OK;
}
