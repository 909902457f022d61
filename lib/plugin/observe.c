/* lib/plugin/observe.c: tg_registry_observe(): swap each registered
 * function for a trampoline that reports the call, and put the original
 * back in the task context while it runs so the function sees no
 * difference. */
#include <time.h>

#include "registry/registry_internal.h"
#include "tgraph/observe.h"

typedef struct wrapped {
  tg_func *f;       /* the registry's function, modified in place */
  tg_task_fn fn;    /* its original code and user pointer */
  void *user;
  struct tg_observation *o;
} wrapped;

struct tg_observation {
  tg_call_observer obs;
  void *ctx;
  size_t n;
  wrapped w[];
};

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int trampoline(tg_task_ctx *ctx, tg_value *const *args, size_t nargs,
                      tg_value **out) {
  const tg_func *f = ctx->fn;
  const wrapped *w = f->user;
  /* The function reads its own `user` through the context: show it a
   * copy of its definition with the original fields. */
  tg_func orig = *f;
  orig.fn = w->fn;
  orig.user = w->user;
  ctx->fn = &orig;
  tg_call_event ev = {TG_CALL_START, tg_task_key(ctx), f->name, ctx->worker,
                      ctx->attempt, 0, now()};
  w->o->obs(w->o->ctx, &ev);
  int rc = w->fn(ctx, args, nargs, out);
  ev.phase = TG_CALL_END;
  ev.status = rc;
  ev.time = now();
  w->o->obs(w->o->ctx, &ev);
  ctx->fn = f;
  return rc;
}

int tg_registry_observe(tg_registry *reg, tg_call_observer obs, void *ctx,
                        tg_observation **out) {
  if (reg == NULL || obs == NULL || out == NULL) return TG_EINVAL;
  size_t n = tg_registry_count(reg);
  tg_observation *o = tg__malloc(sizeof *o + n * sizeof(wrapped));
  if (o == NULL) return TG_ENOMEM;
  o->obs = obs;
  o->ctx = ctx;
  o->n = n;
  for (size_t i = 0; i < n; i++) {
    tg_func *f = (tg_func *)tg_registry_at(reg, i);
    o->w[i] = (wrapped){f, f->fn, f->user, o};
    f->fn = trampoline;
    f->user = &o->w[i];
  }
  *out = o;
  return TG_OK;
}

void tg_observation_end(tg_observation *o) {
  if (o == NULL) return;
  for (size_t i = 0; i < o->n; i++) {
    o->w[i].f->fn = o->w[i].fn;
    o->w[i].f->user = o->w[i].user;
  }
  tg__free(o);
}
