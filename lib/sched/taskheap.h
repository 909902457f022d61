/* lib/sched/taskheap.h: a binary heap of ready tasks, most urgent on top.
 *
 * Every backend keeps its ready tasks of runs with priorities (the sync
 * and tcp backends: all their ready tasks) in one of these, so that the
 * task that starts next is the most urgent by tg__task_before: higher
 * priority first, then earlier submission, then plan order. One heap for
 * all of them keeps that order the same everywhere.
 *
 * Push and pop are on the per-task path of the sync and tcp backends, so
 * they are inline here.
 *
 * Not thread-safe: the owner locks around every call (or uses it from one
 * thread). A zeroed struct is an empty heap; tg__task_heap_free releases
 * the array (not the tasks, which belong to their runs).
 */
#ifndef TG_SCHED_TASKHEAP_H
#define TG_SCHED_TASKHEAP_H

#include <stdbool.h>
#include <stddef.h>

#include "internal.h"
#include "sched/sched_internal.h"

typedef struct tg__task_heap {
  tg__task **v; /* v[0] is the most urgent; v[i] goes before v[2i+1], v[2i+2] */
  size_t n, cap;
} tg__task_heap;

/* Add t. False when the array cannot grow (out of memory): h is
 * unchanged and t is not queued; the caller decides where it goes. */
static inline bool tg__task_heap_push(tg__task_heap *h, tg__task *t) {
  if (h->n == h->cap) {
    size_t c = h->cap ? h->cap * 2 : 256;
    tg__task **v = tg__realloc(h->v, c * sizeof *v);
    if (!v) return false;
    h->v = v;
    h->cap = c;
  }
  size_t i = h->n++;
  while (i > 0 && tg__task_before(t, h->v[(i - 1) / 2])) {
    h->v[i] = h->v[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  h->v[i] = t;
  return true;
}

/* The most urgent task, left in place (h->n > 0). */
static inline tg__task *tg__task_heap_top(const tg__task_heap *h) {
  return h->v[0];
}

/* Remove and return the most urgent task (h->n > 0). */
static inline tg__task *tg__task_heap_pop(tg__task_heap *h) {
  tg__task *top = h->v[0], *last = h->v[--h->n];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= h->n) break;
    if (c + 1 < h->n && tg__task_before(h->v[c + 1], h->v[c])) c++;
    if (!tg__task_before(h->v[c], last)) break;
    h->v[i] = h->v[c];
    i = c;
  }
  if (h->n) h->v[i] = last;
  return top;
}

/* Release the array; h is an empty heap again. */
static inline void tg__task_heap_free(tg__task_heap *h) {
  tg__free(h->v);
  h->v = NULL;
  h->n = h->cap = 0;
}

#endif
