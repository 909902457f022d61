/* lib/builtins/build.c: tg.build, which assembles an argument that nests
 * task results inside lists and maps (see the template format in
 * include/tgraph/builtins.h). */
#include <string.h>

#include "builtins/builtins_internal.h"

static int bad(tg_task_ctx *ctx, const char *what) {
  return tg_task_fail(ctx, TG_EINVAL, "tg.build: bad template: %s", what);
}

static int build(tg_task_ctx *ctx, const tg_value *t, tg_value *const *in,
                 size_t nin, tg_value **out);

static int build_list(tg_task_ctx *ctx, const tg_value *p, tg_value *const *in,
                      size_t nin, tg_value **out) {
  if (tg_value_type(p) != TG_LIST) return bad(ctx, "\"l\" needs a list");
  size_t n = tg_list_len(p);
  tg_value *list = tg_list_alloc(n);
  if (list == NULL) return TG_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    tg_value *item;
    int rc = build(ctx, tg_list_get(p, i), in, nin, &item);
    if (rc == TG_OK) rc = tg_list_init_item(list, i, item);
    if (rc != TG_OK) {
      tg_value_unref(list);
      return rc;
    }
  }
  *out = list;
  return TG_OK;
}

static int build_map(tg_task_ctx *ctx, const tg_value *p, tg_value *const *in,
                     size_t nin, tg_value **out) {
  if (tg_value_type(p) != TG_MAP) return bad(ctx, "\"m\" needs a map");
  size_t n = tg_map_len(p);
  tg_value *map = tg_map_new(n);
  if (map == NULL) return TG_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    size_t klen;
    const char *k = tg_map_key_at(p, i, &klen);
    tg_value *item;
    int rc = build(ctx, tg_map_value_at(p, i), in, nin, &item);
    if (rc == TG_OK) rc = tg_map_put(map, k, klen, item);
    if (rc != TG_OK) {
      tg_value_unref(map);
      return rc;
    }
  }
  *out = map;
  return TG_OK;
}

static int build(tg_task_ctx *ctx, const tg_value *t, tg_value *const *in,
                 size_t nin, tg_value **out) {
  if (tg_value_type(t) != TG_LIST || tg_list_len(t) != 2 ||
      tg_value_type(tg_list_get(t, 0)) != TG_STR)
    return bad(ctx, "a node must be [tag, payload]");
  size_t tl;
  const char *tag = tg_str_data(tg_list_get(t, 0), &tl);
  const tg_value *p = tg_list_get(t, 1);
  if (tl != 1) return bad(ctx, "unknown tag");
  switch (tag[0]) {
    case 'c':
      *out = tg_value_ref((tg_value *)p);
      return TG_OK;
    case 's': {
      int64_t i = tg_value_int(p);
      if (tg_value_type(p) != TG_INT || i < 0 || (uint64_t)i >= nin)
        return bad(ctx, "slot out of range");
      *out = tg_value_ref(in[i]);
      return TG_OK;
    }
    case 'l': return build_list(ctx, p, in, nin, out);
    case 'm': return build_map(ctx, p, in, nin, out);
    default: return bad(ctx, "unknown tag");
  }
}

TG__BI(build) {
  if (nargs < 1) return bad(ctx, "missing");
  int rc = build(ctx, args[0], args + 1, nargs - 1, out);
  if (rc == TG_ENOMEM) return tg_task_fail(ctx, rc, "tg.build: out of memory");
  if (rc == TG_EDEPTH)
    return tg_task_fail(ctx, rc, "tg.build: the value is nested too deeply");
  return rc;
}
