/* lib/backends/deque.h: a Chase-Lev work-stealing deque of pointers (Le,
 * Pop, Cohen, Zappa Nardelli, "Correct and Efficient Work-Stealing for
 * Weak Memory Models", PPoPP 2013), in C11 atomics.
 *
 * The owner pushes and pops at the bottom (LIFO: the newest task first,
 * which keeps a worker depth-first); thieves steal at the top (the oldest,
 * usually the largest piece of remaining work). The array grows by
 * doubling; retired arrays are kept until the deque is destroyed because
 * a thief may still be reading one.
 *
 * Thread safety: tg__deque_push_owner/tg__deque_pop_owner only from the
 * owning thread; tg__deque_steal from any thread; init/destroy while no
 * other thread uses the deque.
 */
#ifndef TG_BACKENDS_DEQUE_H
#define TG_BACKENDS_DEQUE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tg__deque_buf {
  int64_t cap; /* a power of two */
  _Atomic(void *) slot[];
} tg__deque_buf;

typedef struct tg__deque {
  _Alignas(64) _Atomic int64_t top;    /* thieves CAS this */
  _Alignas(64) _Atomic int64_t bottom; /* written by the owner only */
  _Atomic(tg__deque_buf *) buf;
  tg__deque_buf **old;                 /* retired arrays (owner only) */
  size_t nold;
} tg__deque;

/* Empty deque with room for cap (rounded up to a power of two) items. */
int tg__deque_init(tg__deque *d, size_t cap);
void tg__deque_destroy(tg__deque *d);
/* Push x at the bottom; false when growing failed (x not pushed). */
bool tg__deque_push_owner(tg__deque *d, void *x);
/* Pop the bottom item; NULL when empty. */
void *tg__deque_pop_owner(tg__deque *d);
/* Steal the top item; NULL when empty or when another thread won the
 * race for it (then *lost is set: worth retrying). */
void *tg__deque_steal(tg__deque *d, bool *lost);
/* Items present, approximately (any thread). */
static inline int64_t tg__deque_size(tg__deque *d) {
  int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
  int64_t t = atomic_load_explicit(&d->top, memory_order_relaxed);
  return b > t ? b - t : 0;
}

#endif /* TG_BACKENDS_DEQUE_H */
