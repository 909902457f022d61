/* lib/util/bigbuf.c: page-aligned large buffers with a small pool of
 * recently freed ones (see bigbuf.h). */
#include "util/bigbuf.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

typedef struct slot {
  void *p;
  size_t cap;
  double since; /* now_s() at its release */
} slot;

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static slot slots[TG__BIGBUF_SLOTS];
static size_t kept_bytes;
static _Atomic size_t kept_count; /* read without the lock by sweeps */

static size_t page, limit;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void lock_all(void) { pthread_mutex_lock(&lock); }
static void unlock_all(void) { pthread_mutex_unlock(&lock); }

/* A forked child (a worker process) starts with no kept buffers: it
 * would otherwise hold on to the parent's idle pages for good. */
static void child_after_fork(void) {
  for (int i = 0; i < TG__BIGBUF_SLOTS; i++)
    if (slots[i].p) munmap(slots[i].p, slots[i].cap);
  memset(slots, 0, sizeof slots);
  kept_bytes = 0;
  atomic_store(&kept_count, 0);
  pthread_mutex_unlock(&lock);
}

static void init(void) {
  long v = sysconf(_SC_PAGESIZE);
  page = v > 0 ? (size_t)v : 4096;
  long pages = sysconf(_SC_PHYS_PAGES);
  size_t phys = pages > 0 ? (size_t)pages * page : (size_t)1 << 30;
  limit = phys / 16 < ((size_t)1 << 30) ? phys / 16 : (size_t)1 << 30;
  /* A child forked while another thread held the lock would block on it
   * forever: hold it across fork. */
  pthread_atfork(lock_all, unlock_all, child_after_fork);
}

static size_t page_size(void) {
  pthread_once(&once, init);
  return page;
}

static size_t pool_limit(void) {
  pthread_once(&once, init);
  return limit;
}

void *tg__bigbuf_alloc(size_t len, size_t *cap) {
  size_t ps = page_size();
  if (len > SIZE_MAX - ps) return NULL;
  size_t want = (len + ps - 1) & ~(ps - 1);
  if (!want) want = ps;
  tg__bigbuf_sweep();
  if (want >= TG__BIGBUF_MIN) {
    pthread_mutex_lock(&lock);
    int best = -1;
    for (int i = 0; i < TG__BIGBUF_SLOTS; i++)
      if (slots[i].p && slots[i].cap >= want && slots[i].cap - slots[i].cap / 4 <= want &&
          (best < 0 || slots[i].cap < slots[best].cap))
        best = i;
    if (best >= 0) {
      void *p = slots[best].p;
      *cap = slots[best].cap;
      kept_bytes -= slots[best].cap;
      atomic_fetch_sub(&kept_count, 1);
      slots[best] = (slot){0};
      pthread_mutex_unlock(&lock);
      return p;
    }
    pthread_mutex_unlock(&lock);
  }
  void *p = mmap(NULL, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return NULL;
  *cap = want;
  return p;
}

void tg__bigbuf_free(void *p, size_t cap) {
  if (!p) return;
  if (cap < TG__BIGBUF_MIN || cap > pool_limit()) {
    munmap(p, cap);
    return;
  }
  tg__bigbuf_sweep();
  void *drop[TG__BIGBUF_SLOTS + 1];
  size_t drop_cap[TG__BIGBUF_SLOTS + 1], ndrop = 0;
  pthread_mutex_lock(&lock);
  /* Make room: the oldest kept buffers go until p fits in slots and bytes. */
  for (;;) {
    int free_slot = -1, oldest = -1;
    for (int i = 0; i < TG__BIGBUF_SLOTS; i++) {
      if (!slots[i].p) free_slot = free_slot < 0 ? i : free_slot;
      else if (oldest < 0 || slots[i].since < slots[oldest].since) oldest = i;
    }
    if (free_slot >= 0 && kept_bytes + cap <= pool_limit()) {
      slots[free_slot] = (slot){p, cap, now_s()};
      kept_bytes += cap;
      atomic_fetch_add(&kept_count, 1);
      break;
    }
    drop[ndrop] = slots[oldest].p;
    drop_cap[ndrop++] = slots[oldest].cap;
    kept_bytes -= slots[oldest].cap;
    atomic_fetch_sub(&kept_count, 1);
    slots[oldest] = (slot){0};
  }
  pthread_mutex_unlock(&lock);
  for (size_t i = 0; i < ndrop; i++) munmap(drop[i], drop_cap[i]);
}

/* Unmap the kept buffers released before `before`. */
static void release_older(double before) {
  slot out[TG__BIGBUF_SLOTS] = {{0}};
  pthread_mutex_lock(&lock);
  for (int i = 0; i < TG__BIGBUF_SLOTS; i++) {
    if (!slots[i].p || slots[i].since >= before) continue;
    out[i] = slots[i];
    kept_bytes -= slots[i].cap;
    atomic_fetch_sub(&kept_count, 1);
    slots[i] = (slot){0};
  }
  pthread_mutex_unlock(&lock);
  for (int i = 0; i < TG__BIGBUF_SLOTS; i++)
    if (out[i].p) munmap(out[i].p, out[i].cap);
}

void tg__bigbuf_sweep(void) {
  if (atomic_load(&kept_count)) release_older(now_s() - TG__BIGBUF_IDLE);
}

void tg__bigbuf_trim(void) { release_older(1e300); }
