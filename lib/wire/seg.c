/* lib/wire/seg.c: memfd segments (shared memory passed between
 * the parent and workers by fd), their size classes and pools of free
 * segments kept for reuse.
 *
 * Why pools: a fresh page of shared memory costs a page fault and a zeroed
 * page on first touch (about 2.5 us per 4 KiB page here, ten times the
 * cost of copying it), while a segment that is already populated and
 * mapped can be rewritten at memcpy speed. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wire/seg.h"
#include "util/fdtrack.h"

static size_t page_size(void) {
  static _Atomic size_t ps;
  size_t p = atomic_load_explicit(&ps, memory_order_relaxed);
  if (!p) {
    long s = sysconf(_SC_PAGESIZE);
    p = s > 0 ? (size_t)s : 4096;
    atomic_store_explicit(&ps, p, memory_order_relaxed);
  }
  return p;
}

size_t tg__seg_class(size_t nbytes) {
  size_t unit = TG__SEG_MIN;
  if (nbytes > ((size_t)1 << 20)) { /* 1/8 of the power of two below */
    unsigned top = 63u - (unsigned)__builtin_clzll((unsigned long long)nbytes);
    unit = (size_t)1 << (top - 3);
  }
  if (unit < page_size()) unit = page_size();
  if (nbytes > SIZE_MAX - unit) return 0;
  return tg__align_up(nbytes ? nbytes : 1, unit);
}

static _Atomic size_t open_segs;

size_t tg__seg_open(void) { return atomic_load_explicit(&open_segs, memory_order_relaxed); }

int tg__seg_create(size_t size, bool track, tg__seg *s) {
  memset(s, 0, sizeof *s);
  s->fd = -1;
  if (!size) return TG_EINVAL;
  int fd = memfd_create("tgraph", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return -errno;
  /* Sealed at its size: a process that maps it (the receiver of a value
   * in it) cannot be made to fault by the owner shrinking it, and checks
   * the seal before mapping (wire/shm.c). */
  if (ftruncate(fd, (off_t)size) != 0 ||
      fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED) {
    int e = errno;
    close(fd);
    return -e;
  }
  /* A worker forked later must not keep the pages of a segment alive. */
  (void)madvise(m, size, MADV_DONTFORK);
  if (track) tg__fd_track(fd);
  s->fd = fd;
  s->map = m;
  s->size = size;
  s->fresh = true;
  s->made = true;
  atomic_fetch_add_explicit(&open_segs, 1, memory_order_relaxed);
  return TG_OK;
}

int tg__seg_map(int fd, size_t size, bool writable, void **map) {
  struct stat st;
  if (fstat(fd, &st) != 0) return -errno;
  if (st.st_size < 0 || (uint64_t)st.st_size < size || size == 0) return TG_EPROTO;
  void *m = mmap(NULL, size, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd, 0);
  if (m == MAP_FAILED) return -errno;
  (void)madvise(m, size, MADV_DONTFORK);
  *map = m;
  return TG_OK;
}

void tg__seg_destroy(tg__seg *s, bool tracked) {
  if (s->map) munmap(s->map, s->size);
  if (s->fd >= 0) {
    if (tracked) tg__fd_untrack(s->fd);
    close(s->fd);
    if (s->made) atomic_fetch_sub_explicit(&open_segs, 1, memory_order_relaxed);
  }
  s->map = NULL;
  s->fd = -1;
  s->made = false;
}

/* ---- pools ------------------------------------------------------------------- */

bool tg__segpool_take(tg__segpool *p, size_t size, tg__seg *out) {
  for (size_t i = p->n; i-- > 0;) { /* most recently freed first: warmest */
    if (p->v[i].size != size) continue;
    *out = p->v[i];
    out->fresh = false;
    p->v[i] = p->v[--p->n];
    p->bytes -= size;
    return true;
  }
  return false;
}

void tg__segpool_put(tg__segpool *p, tg__seg *s, double now) {
  if (s->size > p->max_bytes) goto drop;
  while (p->bytes + s->size > p->max_bytes && p->n) { /* evict the oldest */
    size_t old = 0;
    for (size_t i = 1; i < p->n; i++)
      if (p->v[i].idle_since < p->v[old].idle_since) old = i;
    p->bytes -= p->v[old].size;
    tg__seg_destroy(&p->v[old], p->tracked);
    p->v[old] = p->v[--p->n];
  }
  if (p->n == p->cap) {
    size_t c = p->cap ? p->cap * 2 : 8;
    tg__seg *v = tg__realloc(p->v, c * sizeof *v);
    if (!v) goto drop;
    p->v = v;
    p->cap = c;
  }
  s->idle_since = now;
  p->v[p->n++] = *s;
  p->bytes += s->size;
  return;
drop:
  tg__seg_destroy(s, p->tracked);
}

size_t tg__segpool_trim(tg__segpool *p, double before) {
  for (size_t i = 0; i < p->n;) {
    if (p->v[i].idle_since < before) {
      p->bytes -= p->v[i].size;
      tg__seg_destroy(&p->v[i], p->tracked);
      p->v[i] = p->v[--p->n];
    } else {
      i++;
    }
  }
  return p->n;
}

void tg__segpool_free(tg__segpool *p) {
  for (size_t i = 0; i < p->n; i++) tg__seg_destroy(&p->v[i], p->tracked);
  tg__free(p->v);
  p->v = NULL;
  p->n = p->cap = p->bytes = 0;
}
