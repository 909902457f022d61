/* lib/cache/batch.h: applying a batch of queued cache ops in one LMDB
 * write transaction (used by the writer thread only).
 */
#ifndef TG_CACHE_BATCH_H
#define TG_CACHE_BATCH_H

#include "cache_internal.h"

/* Encode the batch's values, then apply every op in order in one write
 * transaction (growing the map and retrying when it is full) and commit;
 * prune to max_size when over it. Sets the results of synchronous ops
 * and the counters. Returns the first failure (TG_OK when all went well);
 * ops keep their references (the caller releases them). */
int tg__batch_apply(tg_cache *c, tg__cache_op *ops, size_t n);

#endif /* TG_CACHE_BATCH_H */
