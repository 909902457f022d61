/* lib/sched/taskheap.h: the ready tasks of a backend, most urgent first.
 *
 * Every backend keeps its ready tasks of runs with priorities (the sync
 * and tcp backends: all their ready tasks) in one of these, so that the
 * task that starts next is the most urgent by tg__task_before: higher
 * priority first, then earlier submission, then plan order. One queue for
 * all of them keeps that order the same everywhere.
 *
 * It is a binary heap beside a sorted run: a task that goes after every
 * task of the run is appended to it, any other goes to the heap, and pop
 * takes the more urgent of the run's first and the heap's top. Tasks
 * mostly come in order (a run's initial tasks are sorted, and those it
 * makes ready later mostly follow), so most pushes and pops are O(1)
 * instead of a sift through a heap of thousands. Entries carry their
 * ordering keys, so comparisons stay within the arrays instead of reaching
 * into tasks and their runs (a cache miss each).
 *
 * Push and pop are on the per-task path of the sync and tcp backends, so
 * they are inline here.
 *
 * Not thread-safe: the owner locks around every call (or uses it from one
 * thread). A zeroed struct is empty; tg__task_heap_free releases the
 * arrays (not the tasks, which belong to their runs).
 */
#ifndef TG_SCHED_TASKHEAP_H
#define TG_SCHED_TASKHEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "internal.h"
#include "sched/sched_internal.h"

/* One queued task with its ordering keys. */
typedef struct tg__heap_ent {
  tg__task *t;
  uint64_t seq; /* its run's submission */
  int prio;     /* tg__task_priority */
} tg__heap_ent;

typedef struct tg__task_heap {
  size_t n;           /* tasks queued (both parts): read it, never write */
  tg__heap_ent *v;    /* the heap: v[i] goes before v[2i+1], v[2i+2] */
  size_t hn, cap;
  tg__heap_ent *q;    /* the sorted run: q[qhead..qn), most urgent first */
  size_t qhead, qn, qcap;
} tg__task_heap;

/* tg__task_before on entries. */
static inline bool tg__heap_ent_before(const tg__heap_ent *a, const tg__heap_ent *b) {
  if (a->prio != b->prio) return a->prio > b->prio;
  if (a->seq != b->seq) return a->seq < b->seq;
  return a->t < b->t; /* tasks are stored in plan order */
}

/* Append e to the sorted run; false when it cannot grow. */
static inline bool tg__heap_run_append(tg__task_heap *h, tg__heap_ent e) {
  if (h->qn == h->qcap) {
    if (h->qhead >= h->qcap / 2 && h->qhead > 0) { /* slide down: half is free */
      memmove(h->q, h->q + h->qhead, (h->qn - h->qhead) * sizeof *h->q);
      h->qn -= h->qhead;
      h->qhead = 0;
    } else {
      size_t c = h->qcap ? h->qcap * 2 : 256;
      tg__heap_ent *q = tg__realloc(h->q, c * sizeof *q);
      if (!q) return false;
      h->q = q;
      h->qcap = c;
    }
  }
  h->q[h->qn++] = e;
  return true;
}

/* Add t. False when an array cannot grow (out of memory): h is
 * unchanged and t is not queued; the caller decides where it goes. */
static inline bool tg__task_heap_push(tg__task_heap *h, tg__task *t) {
  tg__heap_ent e = {t, t->run->seq, tg__task_priority(t)};
  if (h->qhead == h->qn || !tg__heap_ent_before(&e, &h->q[h->qn - 1])) {
    if (!tg__heap_run_append(h, e)) return false;
    h->n++;
    return true;
  }
  if (h->hn == h->cap) {
    size_t c = h->cap ? h->cap * 2 : 256;
    tg__heap_ent *v = tg__realloc(h->v, c * sizeof *v);
    if (!v) return false;
    h->v = v;
    h->cap = c;
  }
  size_t i = h->hn++;
  while (i > 0 && tg__heap_ent_before(&e, &h->v[(i - 1) / 2])) {
    h->v[i] = h->v[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  h->v[i] = e;
  h->n++;
  return true;
}

/* Whether the next task is the sorted run's first (h->n > 0). */
static inline bool tg__heap_run_next(const tg__task_heap *h) {
  return h->qhead < h->qn &&
         (h->hn == 0 || tg__heap_ent_before(&h->q[h->qhead], &h->v[0]));
}

/* The most urgent task, left in place (h->n > 0). */
static inline tg__task *tg__task_heap_top(const tg__task_heap *h) {
  return tg__heap_run_next(h) ? h->q[h->qhead].t : h->v[0].t;
}

/* Remove and return the most urgent task (h->n > 0). */
static inline tg__task *tg__task_heap_pop(tg__task_heap *h) {
  h->n--;
  if (tg__heap_run_next(h)) {
    tg__task *t = h->q[h->qhead++].t;
    if (h->qhead == h->qn) h->qhead = h->qn = 0;
    return t;
  }
  tg__task *top = h->v[0].t;
  tg__heap_ent last = h->v[--h->hn];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= h->hn) break;
    if (c + 1 < h->hn && tg__heap_ent_before(&h->v[c + 1], &h->v[c])) c++;
    if (!tg__heap_ent_before(&h->v[c], &last)) break;
    h->v[i] = h->v[c];
    i = c;
  }
  if (h->hn) h->v[i] = last;
  return top;
}

/* Release the arrays; h is empty again. */
static inline void tg__task_heap_free(tg__task_heap *h) {
  tg__free(h->v);
  tg__free(h->q);
  memset(h, 0, sizeof *h);
}

#endif
