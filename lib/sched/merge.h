/* lib/sched/merge.h: identical pure calls of one plan merged into one
 * task (as dask merges equal keys).
 *
 * Two nodes are identical when they call the same pure function (same
 * registry entry: name, version and origin) the same way (node kind,
 * mapped-input count, retries, timeout and cache options) on identical
 * arguments: equal constants (tg_value_equal; constants of 256 bytes or
 * more, and lists or maps beyond a few small items, only when they are
 * the same value object, so that a run never hashes large data), the
 * same future, or results of the same task (with the same item index or
 * map key). That is the cache's Merkle key equality, made exact, and
 * stricter for inputs from impure calls: two calls of an impure
 * function stay two tasks, and so do pure calls of their two results.
 *
 * The plan compiler offers each node of its post-order in turn (all its
 * inputs before it); the first of a kind becomes the task, later
 * identical ones point to it (task_of) and are never tasks: the merged
 * node does not run, has no events of its own, and is counted once.
 *
 * Cost: one 64-bit hash of the node's arguments and one probe of an open
 * addressing table (8 bytes a slot: a task index and half its hash, so
 * that a probe touches the table alone) per pure node; the compiler
 * sizes the table once and prefetches the slots of leaves ahead.
 *
 * Thread safety: one per plan compile, on the compiling thread. */
#ifndef TG_SCHED_MERGE_H
#define TG_SCHED_MERGE_H

#include "sched_internal.h"

typedef struct tg__merge {
  uint64_t *slot;  /* high half: of the task's hash; low: task index + 1
                      (0 = empty) */
  size_t cap, n;   /* slots (a power of two), tasks recorded */
} tg__merge;

static inline void tg__merge_init(tg__merge *m) {
  *m = (tg__merge){NULL, 0, 0};
}
void tg__merge_free(tg__merge *m);

/* Size m's table for n tasks at once (it grows past them as needed).
 * TG_OK or TG_ENOMEM. */
int tg__merge_reserve(tg__merge *m, size_t n);

/* Node `node` of g is about to become task `next` (order[t] is the node
 * of task t < next; task_of holds its inputs' tasks). When an identical
 * call is already task t, *same = t; else *same = UINT32_MAX and the node
 * is recorded as task `next` (when pure). TG_OK or TG_ENOMEM. */
int tg__merge_place(tg__merge *m, const tg_graph *g, uint32_t node,
                    const uint32_t *task_of, const uint32_t *order,
                    uint32_t next, uint32_t *same /* OUT */);

/* A hint that node will be placed soon: when its hash needs no input
 * task (constants only), its slot is fetched into the cache meanwhile. */
void tg__merge_prefetch(const tg__merge *m, const tg_graph *g, uint32_t node);

#endif /* TG_SCHED_MERGE_H */
