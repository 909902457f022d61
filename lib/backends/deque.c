/* lib/backends/deque.c: the Chase-Lev work-stealing deque (see deque.h for
 * the algorithm and its contract). */
#include "deque.h"

#include "internal.h"

static tg__deque_buf *buf_new(int64_t cap) {
  tg__deque_buf *b = tg__malloc(sizeof *b + (size_t)cap * sizeof b->slot[0]);
  if (b) b->cap = cap;
  return b;
}

int tg__deque_init(tg__deque *d, size_t cap) {
  int64_t c = 64;
  while ((size_t)c < cap) c *= 2;
  tg__deque_buf *b = buf_new(c);
  if (!b) return TG_ENOMEM;
  atomic_init(&d->top, 0);
  atomic_init(&d->bottom, 0);
  atomic_init(&d->buf, b);
  d->old = NULL;
  d->nold = 0;
  return TG_OK;
}

void tg__deque_destroy(tg__deque *d) {
  for (size_t i = 0; i < d->nold; i++) tg__free(d->old[i]);
  tg__free(d->old);
  tg__free(atomic_load_explicit(&d->buf, memory_order_relaxed));
}

/* Double the array holding items top..bottom-1; NULL when out of memory. */
static tg__deque_buf *grow(tg__deque *d, tg__deque_buf *a, int64_t t, int64_t b) {
  /* room to retire the old array first, so failure changes nothing */
  tg__deque_buf **old = tg__realloc(d->old, (d->nold + 1) * sizeof *old);
  if (!old) return NULL;
  d->old = old;
  tg__deque_buf *n = buf_new(a->cap * 2);
  if (!n) return NULL;
  for (int64_t i = t; i < b; i++)
    atomic_store_explicit(&n->slot[i & (n->cap - 1)],
                          atomic_load_explicit(&a->slot[i & (a->cap - 1)],
                                               memory_order_relaxed),
                          memory_order_relaxed);
  atomic_store_explicit(&d->buf, n, memory_order_release);
  d->old[d->nold++] = a;
  return n;
}

bool tg__deque_push_owner(tg__deque *d, void *x) {
  int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
  int64_t t = atomic_load_explicit(&d->top, memory_order_acquire);
  tg__deque_buf *a = atomic_load_explicit(&d->buf, memory_order_relaxed);
  if (b - t > a->cap - 1 && !(a = grow(d, a, t, b))) return false;
  atomic_store_explicit(&a->slot[b & (a->cap - 1)], x, memory_order_relaxed);
  /* release: a thief that sees the new bottom sees the slot and the task */
  atomic_store_explicit(&d->bottom, b + 1, memory_order_release);
  return true;
}

void *tg__deque_pop_owner(tg__deque *d) {
  int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed) - 1;
  tg__deque_buf *a = atomic_load_explicit(&d->buf, memory_order_relaxed);
  atomic_store_explicit(&d->bottom, b, memory_order_release);
  atomic_thread_fence(memory_order_seq_cst);
  int64_t t = atomic_load_explicit(&d->top, memory_order_relaxed);
  if (t > b) { /* empty */
    atomic_store_explicit(&d->bottom, b + 1, memory_order_release);
    return NULL;
  }
  void *x = atomic_load_explicit(&a->slot[b & (a->cap - 1)], memory_order_relaxed);
  if (t == b) { /* the last item: race the thieves for it */
    if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1,
                                                 memory_order_seq_cst,
                                                 memory_order_relaxed))
      x = NULL;
    atomic_store_explicit(&d->bottom, b + 1, memory_order_release);
  }
  return x;
}

void *tg__deque_steal(tg__deque *d, bool *lost) {
  int64_t t = atomic_load_explicit(&d->top, memory_order_acquire);
  atomic_thread_fence(memory_order_seq_cst);
  int64_t b = atomic_load_explicit(&d->bottom, memory_order_acquire);
  if (t >= b) return NULL;
  tg__deque_buf *a = atomic_load_explicit(&d->buf, memory_order_acquire);
  void *x = atomic_load_explicit(&a->slot[t & (a->cap - 1)], memory_order_relaxed);
  if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1,
                                               memory_order_seq_cst,
                                               memory_order_relaxed)) {
    *lost = true;
    return NULL;
  }
  return x;
}
