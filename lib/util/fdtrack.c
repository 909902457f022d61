/* lib/util/fdtrack.c: the process-wide set of internal fds a forked
 * worker closes, and the fork lock (see fdtrack.h). */
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "util/fdtrack.h"

/* Bit per fd number. Process-wide: every pool's children must close every
 * pool's fds. Held across fork so a child sees a consistent set. */
static pthread_mutex_t fds_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t *fds_bits;
static size_t fds_words;

void tg__fd_track(int fd) {
  if (fd < 0) return;
  size_t w = (size_t)fd / 64;
  pthread_mutex_lock(&fds_mu);
  if (w >= fds_words) {
    size_t n = w + 1 > 2 * fds_words ? w + 1 : 2 * fds_words;
    uint64_t *b = tg__realloc(fds_bits, n * sizeof *b);
    if (!b) { /* a child may keep this one: only memory, never correctness */
      pthread_mutex_unlock(&fds_mu);
      return;
    }
    memset(b + fds_words, 0, (n - fds_words) * sizeof *b);
    fds_bits = b;
    fds_words = n;
  }
  fds_bits[w] |= UINT64_C(1) << (fd % 64);
  pthread_mutex_unlock(&fds_mu);
}

void tg__fd_untrack(int fd) {
  if (fd < 0) return;
  size_t w = (size_t)fd / 64;
  pthread_mutex_lock(&fds_mu);
  if (w < fds_words) fds_bits[w] &= ~(UINT64_C(1) << (fd % 64));
  pthread_mutex_unlock(&fds_mu);
}

static pthread_rwlock_t busy_lock;
static pthread_once_t busy_once = PTHREAD_ONCE_INIT;

static void busy_init(void) {
  pthread_rwlockattr_t a;
  pthread_rwlockattr_init(&a);
  /* A fork must not wait behind a stream of readers taking turns. */
  pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&busy_lock, &a);
  pthread_rwlockattr_destroy(&a);
}

void tg__fork_busy(void) {
  pthread_once(&busy_once, busy_init);
  pthread_rwlock_rdlock(&busy_lock);
}

void tg__fork_idle(void) { pthread_rwlock_unlock(&busy_lock); }

/* In the child: the forking thread held fds_mu and busy_lock across fork
 * and does not exist here. Close the tracked fds, then make both locks
 * anew, unlocked, and forget the closed fds (their numbers will be
 * reused): a task of this child may start a pool of its own (a nested
 * compute), whose forks take them. */
void tg__fd_close_tracked(void) {
  for (size_t w = 0; w < fds_words; w++)
    for (uint64_t b = fds_bits[w]; b; b &= b - 1)
      close((int)(w * 64 + (size_t)__builtin_ctzll(b)));
  fds_mu = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
  if (fds_bits) memset(fds_bits, 0, fds_words * sizeof *fds_bits);
  busy_init();
}

void tg__fork_begin(void) {
  pthread_once(&busy_once, busy_init);
  pthread_rwlock_wrlock(&busy_lock);
  pthread_mutex_lock(&fds_mu);
}

void tg__fork_end(void) {
  pthread_mutex_unlock(&fds_mu);
  pthread_rwlock_unlock(&busy_lock);
}
