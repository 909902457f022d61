/* lib/backends/sync.c: the sync backend: tasks run in the thread that
 * submits them, one at a time, most urgent (highest priority, then plan
 * order) first, so every compute runs in the same order: for debugging
 * and for tests. */
#include <string.h>

#include "backends.h"
#include "sched/backend.h"
#include "sched/taskheap.h"

/* A sorted array of submitted tasks, consumed from pos: a run's initial
 * tasks arrive sorted, and keeping them so spares a million heap sifts. */
typedef struct batch {
  struct batch *next;
  size_t pos, n;
  tg__task *t[];
} batch;

typedef struct sync_backend {
  tg__backend base;
  pthread_mutex_t mu;  /* guards everything below */
  tg__task_heap heap;  /* ready tasks */
  batch *batches;      /* more ready tasks, each batch sorted */
  tg__task *overflow;  /* ready tasks the heap had no room for */
  bool draining;       /* a thread is running tasks */
  tg__wctx w;          /* used by the draining thread */
} sync_backend;

/* Priority, then submission, then plan order (sched_internal.h). */
static inline bool before(const tg__task *a, const tg__task *b) {
  return tg__task_before(a, b);
}

static void heap_push(sync_backend *s, tg__task *t) {
  if (!tg__task_heap_push(&s->heap, t)) { /* no room: keep it aside; it runs */
    t->next = s->overflow;
    s->overflow = t;
  }
}

/* The most urgent ready task (the same order as one heap would give). */
static tg__task *next_task(sync_backend *s) {
  batch **best = NULL;
  for (batch **b = &s->batches; *b; b = &(*b)->next)
    if (!best || before((*b)->t[(*b)->pos], (*best)->t[(*best)->pos])) best = b;
  if (best && (s->heap.n == 0 ||
               before((*best)->t[(*best)->pos], tg__task_heap_top(&s->heap)))) {
    batch *b = *best;
    tg__task *t = b->t[b->pos++];
    if (b->pos == b->n) {
      *best = b->next;
      tg__free(b);
    }
    return t;
  }
  if (s->heap.n) return tg__task_heap_pop(&s->heap);
  tg__task *t = s->overflow;
  if (t) s->overflow = t->next;
  return t;
}

/* Queue tasks (sorted, most urgent first) with s->mu held. */
static void enqueue(sync_backend *s, tg__task *const *tasks, size_t n) {
  batch *b = n > 16 ? tg__malloc(sizeof *b + n * sizeof b->t[0]) : NULL;
  if (!b) {
    for (size_t i = 0; i < n; i++) heap_push(s, tasks[i]);
    return;
  }
  memcpy(b->t, tasks, n * sizeof b->t[0]);
  b->pos = 0;
  b->n = n;
  b->next = s->batches;
  s->batches = b;
}

/* Move the tasks the last one made ready into the heap (s->mu held). */
static void take_ready(sync_backend *s) {
  tg__task *t = s->w.ready_first, *rest = s->w.ready_rest;
  s->w.ready_first = s->w.ready_rest = NULL;
  if (t) heap_push(s, t);
  while (rest) {
    t = rest;
    rest = rest->next;
    heap_push(s, t);
  }
}

static void sync_submit(tg__backend *b, tg__task *const *tasks, size_t n) {
  sync_backend *s = (sync_backend *)b;
  pthread_mutex_lock(&s->mu);
  enqueue(s, tasks, n);
  if (s->draining) { /* the draining thread will run them */
    pthread_mutex_unlock(&s->mu);
    return;
  }
  s->draining = true;
  for (;;) {
    tg__task *t = next_task(s);
    if (!t) {
      /* Publishing counts may finish runs and run callbacks that submit
       * more: flush unlocked, then look again. */
      pthread_mutex_unlock(&s->mu);
      tg__wctx_flush(&s->w);
      pthread_mutex_lock(&s->mu);
      if (s->heap.n || s->batches || s->overflow) continue;
      break;
    }
    pthread_mutex_unlock(&s->mu);
    tg__task_exec(&s->w, t);
    pthread_mutex_lock(&s->mu);
    take_ready(s);
  }
  s->draining = false;
  pthread_mutex_unlock(&s->mu);
}

static int sync_create(const tg__backend_cfg *cfg, tg__backend **out,
                       tg_error *err) {
  (void)cfg;
  sync_backend *s = tg__calloc(1, sizeof *s);
  if (!s) return tg__error_set(err, TG_ENOMEM, "out of memory");
  s->base.ops = &tg__backend_sync;
  s->base.workers = 1;
  pthread_mutex_init(&s->mu, NULL);
  tg__wctx_init(&s->w, 0);
  *out = &s->base;
  return TG_OK;
}

static void sync_destroy(tg__backend *b) {
  sync_backend *s = (sync_backend *)b;
  if (!s) return;
  tg__wctx_destroy(&s->w);
  while (s->batches) { /* empty when no run is active; be safe */
    batch *b = s->batches;
    s->batches = b->next;
    tg__free(b);
  }
  tg__task_heap_free(&s->heap);
  pthread_mutex_destroy(&s->mu);
  tg__free(s);
}

const tg__backend_ops tg__backend_sync = {
    TG__BACKEND_OPS_V1, "sync", TG__CAP_IN_PROCESS | TG__CAP_ONE_WORKER,
    sync_create, sync_submit, sync_destroy,
};
