/* lib/util/tsan.h: ThreadSanitizer annotations for hand-overs TSan cannot
 * see, compiled away in other builds.
 *
 * libzmq is not instrumented: data given to zmq_msg_init_data() on one
 * thread is released by ZeroMQ's I/O thread through lock-free queues that
 * TSan does not observe. Calling tg__tsan_release(p) before the hand-over
 * and tg__tsan_acquire(p) in the free callback tells TSan what libzmq
 * guarantees, so that real races elsewhere in those callbacks are still
 * reported.
 *
 * Thread safety: annotations only.
 */
#ifndef TG_UTIL_TSAN_H
#define TG_UTIL_TSAN_H

#if defined(__SANITIZE_THREAD__)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
static inline void tg__tsan_acquire(void *p) { __tsan_acquire(p); }
static inline void tg__tsan_release(void *p) { __tsan_release(p); }
#else
static inline void tg__tsan_acquire(void *p) { (void)p; }
static inline void tg__tsan_release(void *p) { (void)p; }
#endif

#endif /* TG_UTIL_TSAN_H */
