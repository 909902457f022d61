/* lib/wire/seg.h: memfd segments (shared memory passed between
 * processes by fd), their size classes and pools of free segments kept
 * for reuse.
 *
 * Thread safety: a segment pool is used by one thread at a time.
 * Fork: segments are mapped MADV_DONTFORK and their fds tracked
 * (util/fdtrack.h) when asked, so that forked children keep neither.
 */
#ifndef TG_WIRE_SEG_H
#define TG_WIRE_SEG_H

#include <stdbool.h>
#include <stddef.h>

#include "internal.h"

/* Arrays, bytes and message parts at least this large cross in shared
 * memory. */
#define TG__SEG_MIN ((size_t)64 << 10)

typedef struct tg__seg {
  int fd;            /* memfd, or -1 once closed */
  void *map;         /* the whole segment */
  size_t size;       /* bytes, a multiple of the page size */
  bool fresh;        /* never written: still all zero */
  bool made;         /* created here (tg__seg_create): counted in
                        tg__seg_open */
  double idle_since; /* while in a pool */
} tg__seg;

/* Segments this process created and has not destroyed (each holds a
 * descriptor open, lent, pooled or mapped by a value): any thread. */
size_t tg__seg_open(void);

/* The segment size used for nbytes of data (size classes make reuse
 * likely; at most 1/8 is wasted). */
size_t tg__seg_class(size_t nbytes);
/* A new memfd segment of `size` bytes mapped read-write and kept out of
 * forked children, sealed at that size (F_SEAL_SHRINK | F_SEAL_GROW |
 * F_SEAL_SEAL: its contents stay writable). track: register the fd so
 * children close it. */
int tg__seg_create(size_t size, bool track, tg__seg *s);
/* Map a received segment fd (checked to hold `size` bytes). */
int tg__seg_map(int fd, size_t size, bool writable, void **map);
/* Unmap and close. */
void tg__seg_destroy(tg__seg *s, bool tracked);

/* Free segments kept for reuse (their pages stay allocated and mapped,
 * which is what makes reuse fast: fresh shared pages cost a fault each). */
typedef struct tg__segpool {
  tg__seg *v;
  size_t n, cap;
  size_t bytes, max_bytes;
  bool tracked;
} tg__segpool;

/* A pooled segment of exactly `size` bytes, or false. */
bool tg__segpool_take(tg__segpool *p, size_t size, tg__seg *out);
/* Keep s for reuse, or destroy it when the pool is full. */
void tg__segpool_put(tg__segpool *p, tg__seg *s, double now);
/* Destroy segments idle since before `before`; returns how many remain. */
size_t tg__segpool_trim(tg__segpool *p, double before);
void tg__segpool_free(tg__segpool *p);

#endif /* TG_WIRE_SEG_H */
