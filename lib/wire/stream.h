/* lib/wire/stream.h: large values streamed as a run of BULK messages
 * sent just before the message that carries the value (wire/wire.h).
 *
 * ZeroMQ hands a multipart message to the reader only once every part has
 * arrived, into a fresh buffer per part: a 200 MiB array sent as one part
 * costs the receiver a page fault per 4 KiB of it, which runs slower than
 * loopback TCP. Sent as separate messages of TG__STREAM_CHUNK bytes, each
 * chunk is copied into the value's buffer (tg__bigbuf: recycled, so
 * usually without faults) while the next is still on the wire, and
 * ZeroMQ's chunk buffers are reused by malloc while still warm.
 *
 *   BULK   u8 TG__M_BULK, varint seq, varint total, varint offset; then one
 *          part of chunk data (1 .. TG__STREAM_CHUNK bytes).
 *
 * Both ends of a connection number their streamed values 0, 1, 2, ... in
 * sending order; the chunks of one value come in order, whole, before the
 * next value's, and a streamed value has TG__STREAM_MIN bytes or more.
 * Anything else (a gap, an overlap, a small value, a total that does not
 * match the value's descriptor) is malformed (TG_EFORMAT); a value over
 * what the receiver's limit has left is TG_ELIMIT (the limit counts the
 * page-rounded buffers held). Either way the caller drops the peer.
 *
 * A receiver serving many peers (a worker) also gives their streams one
 * shared budget (tg__stream_pool): a value is refused (TG_ELIMIT) when the
 * buffers held for all peers together would go over it, so that limits
 * hold per process and not per connection. A buffer counts in the pool
 * from its first chunk until its last release (tg__stream_release), not
 * only until it is taken: values in queued tasks and stored objects are
 * memory held as much as those still arriving.
 *
 * Between a run and a worker of the same user on one host, large values
 * go in shared memory instead once both ends proved it works
 * (wire/shm.h, whose state the stream holds).
 *
 * Thread safety: a tg__stream belongs to the thread that owns its
 * connection, and so do the pool's checks; buffers taken from it may be
 * released from any thread (the pool's count is atomic, and each taken
 * buffer keeps the pool alive).
 */
#ifndef TG_WIRE_STREAM_H
#define TG_WIRE_STREAM_H

#include <stdint.h>
#include <zmq.h>

#include "internal.h"
#include "tgraph/value.h"

struct tg__link;

#define TG__STREAM_MIN ((size_t)4 << 20)   /* leaves from here are streamed */
#define TG__STREAM_CHUNK ((size_t)1 << 20) /* bytes per BULK message */

typedef struct tg__bulk {
  uint64_t seq;
  uint8_t *p;
  size_t cap, total, got;
} tg__bulk;

/* Bytes held for the peers of several streams together, and their most;
 * refcounted (its owner, and each taken buffer not yet released). */
typedef struct tg__stream_pool {
  uint64_t used; /* atomic */
  uint64_t limit;
  unsigned refs; /* atomic */
} tg__stream_pool;

/* A pool of `limit` bytes with one reference, or NULL (out of memory). */
tg__stream_pool *tg__stream_pool_new(uint64_t limit);
/* Drop a reference (pool may be NULL). */
void tg__stream_pool_unref(tg__stream_pool *pool);
/* Count n bytes of a value held outside the streams (a mapped segment,
 * wire/shm.h) in pool, taking a reference to it: TG_ELIMIT (err says
 * so) when the pool would go over its limit. pool may be NULL. */
int tg__stream_pool_hold(tg__stream_pool *pool, uint64_t n, tg_error *err);
/* Give back what tg__stream_pool_hold counted (any thread). */
void tg__stream_pool_drop(tg__stream_pool *pool, uint64_t n);

struct tg__shm;

typedef struct tg__stream {
  uint64_t out_seq; /* next number this end sends */
  uint64_t in_seq;  /* next number expected from the peer */
  tg__bulk *in;     /* received values not yet taken, in order */
  size_t nin, cap_in;
  uint64_t in_bytes; /* their total size */
  uint64_t limit;    /* most bytes held for the peer at once */
  tg__stream_pool *pool; /* shared budget (borrowed), or NULL */
  /* Large values in shared memory instead (wire/shm.h; owned), or
   * NULL: the peer is on another host, another user's, or not proven. */
  struct tg__shm *shm;
  /* Bytes of large values carried either way, for tests and figures. */
  uint64_t streamed_out, streamed_in, shm_out, shm_in;
} tg__stream;

/* An empty stream state allowing `limit` bytes of pending values, and
 * (when pool is not NULL) no more than what the pool has left. pool is
 * borrowed: it must outlive the stream (taken buffers hold their own
 * reference). */
void tg__stream_init(tg__stream *s, uint64_t limit, tg__stream_pool *pool);
/* Forget everything (a new session): buffers are released, and the
 * shared-memory state with them. */
void tg__stream_reset(tg__stream *s);

/* Send len bytes at data as the next streamed value on link sock, each message
 * prefixed by the routing id rid (rid_len 0: none). `hold` is referenced
 * once per chunk until ZeroMQ has sent it (data must live in it). *seq
 * receives the value's number; *bytes (may be NULL) grows by len.
 * TG_ENOMEM, TG_EIO (errno says why). */
int tg__stream_send(struct tg__link *sock, const void *rid, size_t rid_len, const void *data,
                    size_t len, tg_value *hold, tg__stream *s, uint64_t *seq,
                    uint64_t *bytes, tg_error *err);

/* A zmq_free_fn for zero-copy sends: drops the reference `hint` (a
 * tg_value) once ZeroMQ is done with the data (on its I/O thread; the
 * sender calls tg__tsan_release(hint) before the hand-over). */
void tg__zmq_unref_hint(void *data, void *hint);

/* Take in one BULK message (parts[0] its header, parts[1] the chunk).
 * TG_EFORMAT when it breaks the rules above, TG_ELIMIT, TG_ENOMEM; err
 * says which. */
int tg__stream_recv(tg__stream *s, zmq_msg_t *parts, size_t n, tg_error *err);

/* Take over the buffer of value `seq` (complete, exactly len bytes) at
 * *p: free it with tg__stream_release(*hint, *p), from any thread, which
 * also gives its bytes back to the pool. TG_EFORMAT when there is no such
 * value, TG_ENOMEM (the buffer then stays in s). */
int tg__stream_take(tg__stream *s, uint64_t seq, size_t len, void **p, void **hint,
                    tg_error *err);
/* Free a taken buffer (the argument order of a region's or an array's
 * release function: context, then data). */
void tg__stream_release(void *hint, void *p);

#endif /* TG_WIRE_STREAM_H */
