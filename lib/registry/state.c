/* lib/registry/state.c: a worker's instances of per-worker states: init on
 * the first task needing one, the pointer tasks get, a remembered init
 * failure, and teardown when the worker ends (registry.h says when that
 * is on each backend).
 *
 * A worker holds a few states at most, so the table is a short array in
 * the order of the inits, searched linearly, and torn down backwards (a
 * later state may use an earlier one's resources).
 *
 * Thread safety: a table belongs to one worker thread; nothing is shared.
 */
#include <stdio.h>
#include <string.h>

#include "taskhost.h"

static tg__wstate *find(tg__wstates *ws, const tg__state *st) {
  for (uint32_t i = 0; i < ws->n; i++)
    if (ws->v[i].st == st) return &ws->v[i];
  return NULL;
}

/* Run st's init and remember its outcome in a new slot; NULL when out of
 * memory (init is not called then, and is tried again on the next task). */
static tg__wstate *init_one(tg__wstates *ws, const tg__state *st) {
  if (ws->n == ws->cap) {
    uint32_t cap = ws->cap ? ws->cap * 2 : 4;
    tg__wstate *v = tg__realloc(ws->v, cap * sizeof *v);
    if (!v) return NULL;
    ws->v = v;
    ws->cap = cap;
  }
  tg__wstate *s = &ws->v[ws->n++];
  tg_error err;
  tg_error_clear(&err);
  void *value = NULL;
  int rc = st->init(st->user, &value, &err);
  if (rc > 0) rc = TG_ETASK; /* "success" with a positive code is a failure */
  s->st = st;
  s->code = rc;
  s->value = rc == TG_OK ? value : NULL;
  snprintf(s->msg, sizeof s->msg, "%.200s",
           rc == TG_OK ? "" : err.msg[0] ? err.msg : tg_strerror(rc));
  return s;
}

int tg__wstates_prepare(tg__wstates *ws, tg_task_ctx *ctx) {
  const tg__state *st = ctx->fn->state;
  if (!ws)
    return tg_task_fail(ctx, TG_ESTATE,
                        "state '%s' is only available in a worker of an executor",
                        st->name);
  tg__wstate *s = find(ws, st);
  if (!s && !(s = init_one(ws, st)))
    return tg_task_fail(ctx, TG_ENOMEM, "out of memory for state '%s'", st->name);
  if (s->code != TG_OK)
    return tg_task_fail(ctx, s->code, "state '%s' failed to initialize on this worker: %s",
                        st->name, s->msg);
  ctx->state = s->value;
  return TG_OK;
}

void tg__wstates_teardown(tg__wstates *ws) {
  if (!ws) return;
  while (ws->n > 0) {
    tg__wstate *s = &ws->v[--ws->n];
    if (s->code == TG_OK && s->st->teardown) s->st->teardown(s->st->user, s->value);
  }
  tg__free(ws->v);
  ws->v = NULL;
  ws->cap = 0;
}
