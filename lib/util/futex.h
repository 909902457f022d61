/* lib/util/futex.h: waiting on and waking a 32-bit atomic word (Linux
 * futexes), for threads that block until a state word changes. */
#ifndef TG_UTIL_FUTEX_H
#define TG_UTIL_FUTEX_H

#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Sleep while *addr == expected, at most `timeout` seconds (< 0: no
 * limit). May return early (spuriously): callers re-check in a loop. */
static inline void tg__futex_wait(_Atomic uint32_t *addr, uint32_t expected,
                                  double timeout) {
  struct timespec ts, *tp = NULL;
  if (timeout >= 0) {
    ts.tv_sec = (time_t)timeout;
    ts.tv_nsec = (long)((timeout - (double)ts.tv_sec) * 1e9);
    tp = &ts;
  }
  syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, expected, tp, NULL, 0);
}

/* Wake up to n threads sleeping on addr (INT_MAX: all). */
static inline void tg__futex_wake(_Atomic uint32_t *addr, int n) {
  syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

#endif /* TG_UTIL_FUTEX_H */
