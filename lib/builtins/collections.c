/* lib/builtins/collections.c: builtins over whole values: len, concat,
 * identity, and sleep_ms (a timing aid for tests and demos). */
#include <string.h>
#include <time.h>

#include "builtins/builtins_internal.h"

TG__BI(len) {
  (void)nargs;
  const tg_value *v = args[0];
  size_t n;
  switch (tg_value_type(v)) {
    case TG_LIST: n = tg_list_len(v); break;
    case TG_MAP: n = tg_map_len(v); break;
    case TG_STR: tg_str_data(v, &n); break;
    case TG_BYTES: tg_bytes_data(v, &n); break;
    case TG_NDARRAY:
      if (tg_ndarray_ndim(v) == 0)
        return tg_task_fail(ctx, TG_ETYPE, "len: a 0-d array has no length");
      n = (size_t)tg_ndarray_shape(v)[0];
      break;
    default:
      return tg__bi_type_error(ctx, "len", 0,
                               "a list, map, str, bytes or ndarray", v);
  }
  *out = tg_int((int64_t)n);
  return *out ? TG_OK : TG_ENOMEM;
}

TG__BI(identity) {
  (void)ctx;
  (void)nargs;
  *out = tg_value_ref(args[0]);
  return TG_OK;
}

static int concat_lists(tg_task_ctx *ctx, tg_value *const *args, size_t n,
                        tg_value **out) {
  size_t total = 0;
  for (size_t i = 0; i < n; i++) total += tg_list_len(args[i]);
  tg_value *list = tg_list_alloc(total);
  if (list == NULL) return tg_task_fail(ctx, TG_ENOMEM, "concat: out of memory");
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    for (size_t j = 0; j < tg_list_len(args[i]); j++) {
      int rc = tg_list_init_item(list, k++,
                                 tg_value_ref(tg_list_get(args[i], j)));
      if (rc != TG_OK) {
        tg_value_unref(list);
        return tg_task_fail(ctx, rc, "concat: the list is nested too deeply");
      }
    }
  }
  *out = list;
  return TG_OK;
}

static int concat_bytes(tg_task_ctx *ctx, tg_value *const *args, size_t n,
                        bool str, tg_value **out) {
  size_t total = 0, len;
  for (size_t i = 0; i < n; i++) {
    str ? tg_str_data(args[i], &len) : tg_bytes_data(args[i], &len);
    total += len;
  }
  char *buf = tg__malloc(total + 1);
  if (buf == NULL) return tg_task_fail(ctx, TG_ENOMEM, "concat: out of memory");
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    const void *d = str ? (const void *)tg_str_data(args[i], &len)
                        : tg_bytes_data(args[i], &len);
    if (len > 0) memcpy(buf + k, d, len);
    k += len;
  }
  *out = str ? tg_str(buf, total) : tg_bytes(buf, total);
  tg__free(buf);
  return *out ? TG_OK : tg_task_fail(ctx, TG_ENOMEM, "concat: out of memory");
}

TG__BI(concat) {
  if (nargs == 0) {
    *out = tg_list_alloc(0);
    return *out ? TG_OK : TG_ENOMEM;
  }
  tg_type t = tg_value_type(args[0]);
  if (t != TG_LIST && t != TG_STR && t != TG_BYTES)
    return tg__bi_type_error(ctx, "concat", 0, "a list, str or bytes",
                             args[0]);
  for (size_t i = 1; i < nargs; i++)
    if (tg_value_type(args[i]) != t)
      return tg__bi_type_error(ctx, "concat", i, tg_type_name(t), args[i]);
  if (t == TG_LIST) return concat_lists(ctx, args, nargs, out);
  return concat_bytes(ctx, args, nargs, t == TG_STR, out);
}

TG__BI(sleep_ms) {
  (void)nargs;
  if (tg_value_type(args[0]) != TG_INT || tg_value_int(args[0]) < 0)
    return tg__bi_type_error(ctx, "sleep_ms", 0, "a non-negative int",
                             args[0]);
  int64_t ms = tg_value_int(args[0]);
  struct timespec end, now;
  clock_gettime(CLOCK_MONOTONIC, &end);
  end.tv_sec += ms / 1000;
  end.tv_nsec += (ms % 1000) * 1000000;
  if (end.tv_nsec >= 1000000000) {
    end.tv_sec++;
    end.tv_nsec -= 1000000000;
  }
  /* Sleep in slices of at most 10 ms so cancellation is noticed soon. */
  for (;;) {
    if (tg_task_cancelled(ctx))
      return tg_task_fail(ctx, TG_ECANCELED, "sleep_ms: cancelled");
    clock_gettime(CLOCK_MONOTONIC, &now);
    /* Whole seconds first: ms up to INT64_MAX would overflow in ns. */
    int64_t secs = (int64_t)(end.tv_sec - now.tv_sec);
    int64_t left = secs > 1 ? 10000000
                            : secs * 1000000000 + (end.tv_nsec - now.tv_nsec);
    if (left <= 0) break;
    if (left > 10000000) left = 10000000;
    struct timespec d = {0, (long)left};
    nanosleep(&d, NULL);
  }
  *out = tg_value_ref(args[0]);
  return TG_OK;
}
