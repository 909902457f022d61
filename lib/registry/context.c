/* lib/registry/context.c: what a running task can ask of its context:
 * failing with a message, cancellation, progress, logging, its key, its
 * worker's state. What only the caller of the task knows (cancellation of
 * its compute, keys, where logs go) comes through the context's task
 * host (taskhost.h), whoever that is. */
#include <stdio.h>

#include "taskhost.h"

int tg_task_fail(tg_task_ctx *ctx, int code, const char *fmt, ...) {
  if (code >= 0) code = TG_ETASK; /* failing with "success" is a failure */
  if (!ctx) return code;
  ctx->fail_code = code;
  ctx->msg[0] = '\0';
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->msg, sizeof ctx->msg, fmt, ap);
    va_end(ap);
  }
  return code;
}

bool tg_task_cancelled(const tg_task_ctx *ctx) {
  if (!ctx) return false;
  const tg__task_host_ops *ops = ctx->host.ops;
  if (ops && ops->cancelled && ops->cancelled(ctx->host.self)) return true;
  return ctx->deadline > 0 && tg__now() > ctx->deadline;
}

void tg_task_progress(tg_task_ctx *ctx, double fraction) {
  if (!ctx || !(fraction >= 0)) return; /* also rejects NaN */
  ctx->progress = fraction > 1 ? 1 : fraction;
}

const char *tg_task_key(const tg_task_ctx *ctx) {
  if (!ctx) return "";
  tg_task_ctx *c = (tg_task_ctx *)ctx; /* the key is formatted lazily */
  if (!c->key) {
    const tg__task_host_ops *ops = c->host.ops;
    if (ops && ops->key)
      c->key = ops->key(c->host.self, c->id, c->keybuf, sizeof c->keybuf);
    else
      c->key = c->fn ? c->fn->name : "";
  }
  return c->key;
}

void tg_task_log(tg_task_ctx *ctx, const char *fmt, ...) {
  if (!ctx || !fmt) return;
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  const char *key = tg_task_key(ctx);
  const tg__task_host_ops *ops = ctx->host.ops;
  if (ops && ops->log)
    ops->log(ctx->host.self, key, line);
  else
    fprintf(stderr, "[%s] %s\n", key, line);
}

void *tg_task_user(const tg_task_ctx *ctx) {
  return ctx && ctx->fn ? ctx->fn->user : NULL;
}
int tg_task_worker(const tg_task_ctx *ctx) { return ctx ? ctx->worker : 0; }
int tg_task_attempt(const tg_task_ctx *ctx) { return ctx ? ctx->attempt : 0; }
void *tg_task_state(const tg_task_ctx *ctx) { return ctx ? ctx->state : NULL; }
