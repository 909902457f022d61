/* lib/graph/call.c: calling a node's function as every executor does (see
 * call.h). */
#include <stdio.h>
#include <string.h>

#include "graph/call.h"

int tg__node_check_deadline(tg_task_ctx *ctx, const tg__gnode *nd, int code, double now) {
  if (!(ctx->deadline > 0) || now <= ctx->deadline) return code;
  if (code != TG_OK && code != TG_ECANCELED) return code;
  return tg_task_fail(ctx, TG_ETIMEDOUT, "timed out after %g s", (double)nd->timeout);
}

/* A list of fn(extras with in_i inserted at the chunk's position) over
 * the first tg__chunk_count(nd->aux) arguments. */
int tg__node_call_chunk(tg_task_ctx *ctx, const tg__gnode *nd, tg_value **args, tg_value **out) {
  size_t k = tg__chunk_count(nd->aux), nextra = nd->nargs - k;
  size_t pos = tg__chunk_pos(nd->aux);
  if (pos > nextra) pos = nextra; /* checked when added and off the wire */
  tg_value *stack[16];
  tg_value **ea = nextra < 16 ? stack : tg__malloc((nextra + 1) * sizeof *ea);
  tg_value *list = ea ? tg_list_alloc(k) : NULL;
  int rc = list ? TG_OK : tg_task_fail(ctx, TG_ENOMEM, "out of memory");
  if (ea) {
    memcpy(ea, args + k, pos * sizeof *ea);
    memcpy(ea + pos + 1, args + k + pos, (nextra - pos) * sizeof *ea);
  }
  for (size_t i = 0; i < k && rc == TG_OK; i++) {
    tg_value *v = NULL;
    ea[pos] = args[i];
    rc = nd->fn->fn(ctx, ea, nextra + 1, &v);
    if (rc == TG_OK && !v) rc = tg_task_fail(ctx, TG_EINVAL, "returned no value");
    if (rc == TG_OK) rc = tg_list_init_item(list, i, v);
    else tg_value_unref(v);
    if (rc != TG_OK) { /* say which call of the chunk failed */
      char m[sizeof ctx->msg + sizeof ctx->keybuf + 64];
      snprintf(m, sizeof m, "%s (element %zu of chunk '%s')",
               ctx->fail_code ? ctx->msg : tg_strerror(rc), i, tg_task_key(ctx));
      tg_task_fail(ctx, rc, "%s", m);
    }
  }
  if (ea != stack) tg__free(ea);
  if (rc != TG_OK) tg_value_unref(list);
  else *out = list;
  return rc;
}

/* The concatenation of list arguments (one list is passed through). The
 * type check matters to remote workers, whose arguments come off the
 * wire. */
int tg__node_call_concat(tg_task_ctx *ctx, size_t n, tg_value **args, tg_value **out) {
  size_t total = 0, at = 0;
  for (size_t i = 0; i < n; i++) {
    if (tg_value_type(args[i]) != TG_LIST)
      return tg_task_fail(ctx, TG_ETYPE, "concatenating a %s, not a list",
                          tg_type_name(tg_value_type(args[i])));
    total += tg_list_len(args[i]);
  }
  if (n == 1) {
    *out = tg_value_ref(args[0]);
    return TG_OK;
  }
  tg_value *list = tg_list_alloc(total);
  if (!list) return tg_task_fail(ctx, TG_ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i++) {
    tg_value *const *it = tg_list_items(args[i]);
    for (size_t j = 0, m = tg_list_len(args[i]); j < m; j++)
      tg_list_init_item(list, at++, tg_value_ref(it[j]));
  }
  *out = list;
  return TG_OK;
}

int tg__node_call(tg_task_ctx *ctx, const tg__gnode *nd, tg_value **args, tg_value **out) {
  int rc = tg__node_call_once(ctx, nd, args, out);
  if (rc == TG_OK && !*out) rc = tg_task_fail(ctx, TG_EINVAL, "returned no value");
  if (ctx->deadline > 0) rc = tg__node_check_deadline(ctx, nd, rc, tg__now());
  if (rc != TG_OK) {
    tg_value_unref(*out);
    *out = NULL;
  }
  if (rc > 0) rc = tg_task_fail(ctx, TG_ETASK, "returned status %d", rc);
  return rc;
}
