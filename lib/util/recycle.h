/* lib/util/recycle.h: a free list of equal-sized blocks, for objects made
 * and dropped once per task on one thread (the out-of-process
 * dispatcher's task records, a worker's parsed tasks).
 *
 * Such objects come and go in bursts of hundreds (a batch sent, a batch of
 * results back), past what malloc's per-thread cache holds, so each cost
 * 200-400 instructions in malloc and free. Kept here, a block costs a few.
 *
 * Blocks are `size` bytes, suitably aligned for any type; a caller whose
 * object is larger allocates it with tg__malloc and frees it with
 * tg__free itself (tg__recycle_fits says which). At most `max` blocks are
 * kept; the rest go back to free(). A zeroed recycler with size and max
 * set is empty and ready.
 *
 * Thread safety: none; one thread owns a recycler (its blocks may be
 * handed between threads in between, as any malloc'd memory).
 */
#ifndef TG_UTIL_RECYCLE_H
#define TG_UTIL_RECYCLE_H

#include <stdbool.h>
#include <stddef.h>

#include "internal.h"

typedef struct tg__recycler {
  void *head;   /* kept blocks, linked through their first word */
  size_t n;     /* blocks kept */
  size_t size;  /* bytes per block (>= sizeof(void *)) */
  size_t max;   /* blocks kept at most */
} tg__recycler;

static inline bool tg__recycle_fits(const tg__recycler *r, size_t n) { return n <= r->size; }

/* A block of r->size bytes (contents undefined), or NULL (out of memory). */
static inline void *tg__recycle_get(tg__recycler *r) {
  void *p = r->head;
  if (!p) return tg__malloc(r->size);
  r->head = *(void **)p;
  r->n--;
  return p;
}

/* Give back a block from tg__recycle_get (NULL: nothing). */
static inline void tg__recycle_put(tg__recycler *r, void *p) {
  if (!p) return;
  if (r->n >= r->max) {
    tg__free(p);
    return;
  }
  *(void **)p = r->head;
  r->head = p;
  r->n++;
}

/* Free every kept block; r stays usable. */
static inline void tg__recycle_drain(tg__recycler *r) {
  while (r->head) {
    void *p = r->head;
    r->head = *(void **)p;
    tg__free(p);
  }
  r->n = 0;
}

#endif /* TG_UTIL_RECYCLE_H */
