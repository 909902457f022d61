/* lib/wire/segbook.h: the segments one end of a connection has lent to
 * its peer and borrowed from it.
 *
 * Large values cross between two processes of one host in memfd segments
 * (wire/seg.h), whichever way a segment reaches the peer: with its fd
 * over the local link's socketpair (wire/link_local.c) or opened
 * through /proc by a same-user tcp peer (wire/shm.c). Those differ in
 * how a segment is named and checked and in their messages; what each
 * end must remember of the segments is the same, and is kept here.
 *
 * Lent (tg__lent): a segment of ours, under an id the peer names it by.
 * It is referenced once while the peer may map it (from tg__segbook_lend
 * until the peer gives it back, tg__segbook_returned) and once per value
 * of ours over it that the peer sent back to us (tg__segbook_hold). The
 * last reference returns it to the book's pool of free segments (on the
 * owner's thread) or, once the book is finished, destroys it (on any
 * thread). A segment is written only while nobody else references it:
 * its pages are reused at memcpy speed (wire/seg.c says why).
 *
 * Borrowed: a segment of the peer's mapped here (tg__segbook_borrow), the
 * memory of a value received. Releasing the value (any thread) unmaps it
 * and lists its id, which the owner tells the peer
 * (tg__segbook_let_go); while it is mapped, bytes within it are found by
 * tg__segbook_find and go back to the peer as a reference, not a copy.
 *
 * A book's segments may end with `tail` bytes that are not data (a
 * token): a reference back into a segment stays within the rest.
 *
 * Pool: TG__SEGBOOK_POOL bytes of free segments at most; those idle for
 * TG__SEGBOOK_IDLE seconds are dropped (tg__segbook_tidy).
 *
 * Thread safety: a book belongs to its connection's thread (the owner):
 * every call is the owner's but the two releases, tg__segbook_unhold and
 * tg__segbook_unborrow, which run on any thread, before or after
 * tg__segbook_fini. What they leave for the owner (ids to tell, segments
 * of ours to pool) sits in a record shared with the owner under its lock
 * and refcounted by the book and each value over a segment.
 * Fork: segments are mapped MADV_DONTFORK, and in a tracked book their
 * fds are tracked (util/fdtrack.h): a forked child keeps none of them and
 * must not use a book it inherited.
 */
#ifndef TG_WIRE_SEGBOOK_H
#define TG_WIRE_SEGBOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/buf.h"
#include "util/idmap.h"
#include "wire/seg.h"

struct tg__stream_pool;
struct tg__segbook_shared;

#define TG__SEGBOOK_POOL ((size_t)1 << 30) /* bytes of free segments kept */
#define TG__SEGBOOK_IDLE 2.0               /* seconds a free segment is kept */

typedef struct tg__lent {
  tg__seg s;             /* s.fresh: new, not from the pool */
  uint64_t id;           /* the peer's name for it */
  _Atomic unsigned refs; /* private: see above */
  struct tg__lent *next; /* private: segments whose last user went */
} tg__lent;

typedef struct tg__segbook { /* fields private; embedded by its connection */
  struct tg__segbook_shared *sh;
  tg__segpool pool; /* free segments of ours */
  tg__idmap busy;   /* id -> tg__lent the peer may map */
  uint64_t next_id;
  double last_trim;
  size_t tail;
} tg__segbook;

/* An empty book for a connection. tail: bytes at the end of each segment
 * that are not data; tracked: track segment fds. TG_ENOMEM (b is then
 * as if finished). */
int tg__segbook_init(tg__segbook *b, size_t tail, bool tracked);
/* The connection ended: the peer's holds end with it, free segments are
 * destroyed, and values over segments (either way) keep theirs until
 * released. */
void tg__segbook_fini(tg__segbook *b);

/* ---- ours ---- */

/* A segment of ours of `size` bytes (a tg__seg_class size) with one
 * reference, under a new id: from the pool (s.fresh false, its bytes as
 * last written) or new (s.fresh: all zero). NULL when size is 0 or out of
 * memory or fds. Not lent yet. */
tg__lent *tg__segbook_take(tg__segbook *b, size_t size);
/* The peer may map o from now on, until it gives it back; the reference
 * tg__segbook_take gave is the peer's. False (nothing changed) when out
 * of memory. */
bool tg__segbook_lend(tg__segbook *b, tg__lent *o);
/* Segments lent now (each holds an fd of ours open). */
static inline size_t tg__segbook_nlent(const tg__segbook *b) { return b->busy.n; }
/* Back to the pool, a segment taken and not lent. */
void tg__segbook_drop(tg__segbook *b, tg__lent *o);
/* Destroy a segment taken and not lent (not to be reused). */
void tg__segbook_destroy(tg__segbook *b, tg__lent *o);
/* The segment of ours lent under id whose data (all but the tail) holds
 * len bytes at off; NULL when there is none (a peer naming what it may
 * not map). */
tg__lent *tg__segbook_lent(tg__segbook *b, uint64_t id, uint64_t off, uint64_t len);
/* A value of ours over o, sent back by the peer: its context, to be let go
 * with tg__segbook_unhold(ctx, data) from any thread; NULL when out of
 * memory. */
void *tg__segbook_hold(tg__segbook *b, tg__lent *o);
void tg__segbook_unhold(void *ctx, void *data);
/* The peer gave back the segments at r (varint n, n x varint id, to the
 * end of r): the peer's references dropped. False when r is malformed or
 * names one not lent (not ours, or given back twice); those before it
 * stay given back. */
bool tg__segbook_returned(tg__segbook *b, tg__rbuf *r);
/* Pool the segments of ours freed on other threads and drop those idle
 * too long. */
void tg__segbook_tidy(tg__segbook *b);

/* ---- the peer's ---- */

/* Record a mapping (map, size bytes, tg__seg_map) of the peer's segment
 * id, the memory of a value, counted in pool (may be NULL) by the caller
 * (tg__stream_pool_hold): the value's context, to be let go with
 * tg__segbook_unborrow(ctx, data) from any thread, which unmaps it, gives
 * size back to pool and lists id for the peer. NULL when out of memory
 * (the mapping and the count stay the caller's). */
void *tg__segbook_borrow(tg__segbook *b, void *map, size_t size, uint64_t id,
                         struct tg__stream_pool *pool);
void tg__segbook_unborrow(void *ctx, void *data);
/* Whether len bytes at p lie in the data of a segment of the peer's
 * mapped now: *id and the offset *off. */
bool tg__segbook_find(tg__segbook *b, const void *p, size_t len, uint64_t *id, uint64_t *off);
/* The ids of the peer's segments let go of since the last call (*n of
 * them), to tell the peer; the caller frees the array (tg__free). NULL and
 * *n = 0 when there are none. */
uint64_t *tg__segbook_let_go(tg__segbook *b, size_t *n);
/* Append n ids as tg__segbook_returned reads them. */
void tg__segbook_put_ids(tg__wbuf *w, const uint64_t *ids, size_t n);

#endif /* TG_WIRE_SEGBOOK_H */
