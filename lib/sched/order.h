/* lib/sched/order.h: the static order of a run's tasks, chosen to keep
 * few intermediate results alive at once (as dask.order does).
 *
 * The plan compiler (runplan.c) culls the graph first; this module then
 * ranks the surviving tasks. A task's rank is its position in a simulated
 * one-at-a-time execution:
 *   - whenever a ready task would not grow memory (it is the last consumer
 *     of one of its inputs, or it is an output), it runs at once, so
 *     shared inputs and partial results are released as early as possible
 *     (dask's "eager to compute the dependent that frees a parent");
 *   - otherwise the next task on the way to a target runs. The way is the
 *     depth-first post-order of what the target still needs, walking into
 *     the input with the most work behind it first (finish the big branch,
 *     then the small ones that join it). The target is a consumer still to
 *     run of the latest result in memory (finish what was started before
 *     loading more, as dask's choice of the leaf nearest to what is
 *     computed), else the next output in the caller's order.
 * The result is a topological order (inputs rank lower), a clean rank per
 * task that a later pass may combine with another key. Linear in tasks
 * and edges apart from sorting each task's inputs; iterative throughout.
 *
 * For a forest (no task shared by two others) whose inputs, in argument
 * order, never have more tasks under them than the one before, this is
 * the plain depth-first post-order from the outputs: the plan compiler
 * then keeps its culling order and skips the call.
 *
 * Not thread-safe on its arguments; it allocates only its own scratch.
 */
#ifndef TG_SCHED_ORDER_H
#define TG_SCHED_ORDER_H

#include "graph/graph_internal.h"

/* Reorder nodes[0..n-1], graph node ids in a topological order (every
 * node's inputs before it), in place into the memory-aware order, and set
 * task_of[node] to each node's new index (task_of has g->n entries; culled
 * nodes are left as they are). leaf[i] (for the input order) says that
 * nodes[i] has no inputs in this run (a cache hit); outs[0..nout-1] are
 * the outputs (nodes of the run). Returns TG_OK or TG_ENOMEM (nodes and
 * task_of unchanged). */
int tg__order_tasks(const tg_graph *g, const tg_node *outs, size_t nout,
                    const uint8_t *leaf, uint32_t *nodes, uint32_t n,
                    uint32_t *task_of);

#endif /* TG_SCHED_ORDER_H */
