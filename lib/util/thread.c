/* lib/util/thread.c: see thread.h. */
#include "thread.h"

#include <errno.h>
#include <sched.h>
#include <unistd.h>
#include <limits.h>

#include "futex.h"
#include "internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define WAIT_FOR_START 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WAIT_FOR_START 1
#endif
#endif

#ifdef WAIT_FOR_START
typedef struct start_record {
  void *(*fn)(void *);
  void *arg;
  tg__thread_group *group;
} start_record;

static void *trampoline(void *p) {
  start_record *r = p;
  void *(*fn)(void *) = r->fn;
  void *arg = r->arg;
  tg__thread_group *g = r->group;
  tg__free(r);
  /* The group may be gone once the creator sees the count: the wake may
   * then reach another waiter on that address, and futex waiters re-check
   * their word (futex.h). */
  atomic_fetch_add_explicit(&g->entered, 1, memory_order_release);
  tg__futex_wake(&g->entered, INT_MAX);
  return fn(arg);
}

int tg__thread_start_in(tg__thread_group *g, pthread_t *th, void *(*fn)(void *),
                        void *arg) {
  start_record *r = tg__malloc(sizeof *r);
  if (!r) return ENOMEM;
  *r = (start_record){fn, arg, g};
  int rc = pthread_create(th, NULL, trampoline, r);
  if (rc != 0) {
    tg__free(r);
    return rc;
  }
  g->started++;
  return 0;
}

void tg__thread_group_wait(tg__thread_group *g) {
  for (;;) {
    uint32_t n = atomic_load_explicit(&g->entered, memory_order_acquire);
    if (n >= g->started) return;
    tg__futex_wait(&g->entered, n, -1);
  }
}
#else
int tg__thread_start_in(tg__thread_group *g, pthread_t *th, void *(*fn)(void *),
                        void *arg) {
  (void)g;
  return pthread_create(th, NULL, fn, arg);
}

void tg__thread_group_wait(tg__thread_group *g) { (void)g; }
#endif

int tg__thread_start(pthread_t *th, void *(*fn)(void *), void *arg) {
  tg__thread_group g = {0};
  int rc = tg__thread_start_in(&g, th, fn, arg);
  if (rc == 0) tg__thread_group_wait(&g);
  return rc;
}

void tg__thread_batch(void) {
  struct sched_param no_priority = {0};
  sched_setscheduler(0, SCHED_BATCH, &no_priority); /* this thread (Linux) */
}

unsigned tg__ncpus(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (unsigned)n : 1u;
}
