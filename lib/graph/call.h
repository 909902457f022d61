/* lib/graph/call.h: calling a node as every executor does: a call of its
 * function, a mapped chunk (a list of calls over its first arguments) or a
 * concatenation of lists. The in-process engine (sched/task.c) calls
 * tg__node_call_once inside its own attempt loop; out-of-process workers
 * (worker/pool.c) and the engine's inline calls use tg__node_call, one
 * attempt with its checks. Here, below the scheduler, so that a worker
 * calls a task without a run (its context's host: registry/taskhost.h).
 *
 * Thread safety: as the function called; nd is only read.
 */
#ifndef TG_GRAPH_CALL_H
#define TG_GRAPH_CALL_H

#include "graph/graph_internal.h"
#include "registry/taskhost.h" /* tg_task_ctx */

/* A list of fn(extras with in_i inserted at the chunk's position) over
 * the first tg__chunk_count(nd->aux) arguments. */
int tg__node_call_chunk(tg_task_ctx *ctx, const tg__gnode *nd, tg_value **args, tg_value **out);
/* The concatenation of n list arguments (one list is passed through). */
int tg__node_call_concat(tg_task_ctx *ctx, size_t n, tg_value **args, tg_value **out);

/* One call of nd on args: TG_OK with *out set, or the function's status.
 * Inline: the in-process engine's hot path is the default case. */
static inline int tg__node_call_once(tg_task_ctx *ctx, const tg__gnode *nd, tg_value **args,
                                     tg_value **out) {
  if (TG__UNLIKELY(nd->kind != TG__NK_CONCAT && nd->fn->state)) {
    int rc = tg__wstates_prepare(ctx->states, ctx);
    if (rc != TG_OK) return rc;
  }
  switch (nd->kind) {
    case TG__NK_CHUNK: return tg__node_call_chunk(ctx, nd, args, out);
    case TG__NK_CONCAT: return tg__node_call_concat(ctx, nd->nargs, args, out);
    case TG__NK_MAPOVER: /* tg_compute expands it first */
      return tg_task_fail(ctx, TG_EINVAL, "a map over a task's result runs under "
                          "tg_compute only (not as an executor submission)");
    default: return nd->fn->fn(ctx, args, nd->nargs, out);
  }
}

/* A call that ended (code) at `now` after its own deadline (ctx->deadline)
 * passed timed out, also when it noticed (tg_task_cancelled) and gave up:
 * TG_ETIMEDOUT, else code. */
int tg__node_check_deadline(tg_task_ctx *ctx, const tg__gnode *nd, int code, double now);

/* One attempt at nd's call on args, as workers outside any run make it
 * (nd needs fn, kind, nargs, aux and timeout): no result, a positive
 * status and passing ctx->deadline are failures with a message in ctx,
 * as in the engine; *out is NULL on failure. */
int tg__node_call(tg_task_ctx *ctx, const tg__gnode *nd, tg_value **args, tg_value **out);

#endif /* TG_GRAPH_CALL_H */
