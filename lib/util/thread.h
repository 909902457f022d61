/* lib/util/thread.h: starting the library's own threads.
 *
 * Under AddressSanitizer, tg__thread_start returns only once the new
 * thread runs the given function. Why: there a thread's start-up
 * allocates (GCC 12's runtime calls pthread_getattr_np, which callocs,
 * from the new thread before any of our code), and the sanitizer's
 * allocator, unlike glibc's, takes no lock around fork: a worker process
 * forked at that moment inherits a size class's lock held by a thread it
 * does not have, and hangs at its first refill of that class, hundreds of
 * tasks later (1 run in 12 of the cross-backend test did). Waiting makes
 * every fork the library orders after creating a thread (the processes
 * backend's spawner, any fork after an executor was created) happen once
 * that thread is in our code. This closes the start-up window only: a
 * running thread that allocates outside the processes backend's fork lock
 * (a threads pool's tasks, the cache writer) can still be copied
 * mid-allocation by a fork under ASan. Elsewhere a new thread allocates nothing
 * before our code and glibc's malloc is fork-safe, so these are plain
 * pthread_create: waiting cost a temporary 8-thread executor 15%.
 *
 * Thread safety: call from any thread. */
#ifndef TG_UTIL_THREAD_H
#define TG_UTIL_THREAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/* pthread_create(th, NULL, fn, arg) (then, under ASan, wait until fn has
 * been entered). Returns 0 or an error number (pthread_create's, ENOMEM). */
int tg__thread_start(pthread_t *th, void *(*fn)(void *), void *arg);

/* Make the calling thread (and the threads and processes it starts
 * afterwards) a batch thread, SCHED_BATCH: its share of the processors
 * is a normal thread's, but waking it preempts no running thread (the
 * one that woke it included); it runs on a free processor, or when the
 * tick ends the running thread's slice. For a forked
 * worker, whole (offload/procs_spawn.c): woken by a message as a normal
 * process, it took the processor of the run's I/O thread in the middle
 * of its sends and held it while calling a batch of quick tasks; the I/O
 * thread, the run's bottleneck, waited. (The pool threads of a tcp
 * worker made batch alone changed nothing measurable on tcp:2.) Without
 * the right (a sandbox), the thread stays as it was. */
void tg__thread_batch(void);

/* Number of CPUs online (at least 1): default worker and thread counts
 * (executors, workers). */
unsigned tg__ncpus(void);

/* Several threads starting at once (a pool's workers): start each with
 * tg__thread_start_in, then wait for all with tg__thread_group_wait.
 * Zero-initialise; one creator thread uses a group. */
typedef struct tg__thread_group {
  _Atomic uint32_t entered;
  uint32_t started;
} tg__thread_group;

int tg__thread_start_in(tg__thread_group *g, pthread_t *th, void *(*fn)(void *),
                        void *arg);
void tg__thread_group_wait(tg__thread_group *g);

#endif /* TG_UTIL_THREAD_H */
