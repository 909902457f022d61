/* lib/wire/wire.h: values on the wire of the worker protocol: the
 * project's serializer format, with large arrays and bytes travelling
 * outside the encoding so that they are not copied into an encoding
 * buffer on the way out.
 *
 * A message carrying a value is: [routing id], the header part, then
 *   descriptor  u8 1, varint n, then per large leaf: u8 kind (0 a leaf
 *               part, 1 streamed, 2 in shared memory), varint (streamed ?
 *               seq : pad, 0 in shared memory), varint depth, depth x varint
 *               index (list position or map entry position, from the
 *               root), u8 type (6 ndarray: u8 dtype, u8 ndim, ndim x
 *               varint dim; 5 bytes: varint length)
 *   skeleton    the value encoded with tg_encode, each large leaf
 *               replaced by null
 *   leaf parts  the raw data of the leaves that are not streamed, in
 *               descriptor order
 * A leaf is large from TG__WIRE_PART_MIN bytes. Leaves of TG__STREAM_MIN
 * bytes or more are streamed (on links that stream: ZeroMQ's): sent just before the message as BULK
 * messages (wire/stream.h), numbered per connection; the descriptor
 * names them by number.
 *
 * Alignment of leaf parts: arrays must be 64-byte aligned, and libzmq puts
 * a large part at a fixed offset from a 64-byte boundary of its buffer
 * (its "misalignment", which each end measures and tells the other in the
 * handshake). A leaf part starts with `pad` zero bytes (< 64) chosen so
 * that its data lands aligned: the receiver then keeps ZeroMQ's buffer as
 * the array's memory. Padding is only sent when the zeros already lie in
 * front of the data in memory (arrays received from a peer); other arrays
 * go with no padding and the receiver copies them once, into a buffer
 * with zeros in front, so that they can travel on without a copy.
 * Streamed leaves land in page-aligned buffers (util/bigbuf.h).
 *
 * Between a run and a worker of the same user on one host, once both
 * proved they can open each other's segments (wire/shm.h), leaves of
 * TG__STREAM_MIN bytes or more go in shared memory instead of streamed:
 * their leaf part is then a segment descriptor, and the value received
 * wraps the mapped segment (page-aligned).
 *
 * Decoding treats everything as hostile: paths must lead through fresh
 * containers to a null, sizes must match the parts exactly, counts are
 * bounded by the parts present and the values streamed.
 *
 * Thread safety: the calls use only their arguments; a socket and its
 * tg__stream are used by their owning thread only.
 */
#ifndef TG_WIRE_WIRE_H
#define TG_WIRE_WIRE_H

#include <stdbool.h>
#include <stdint.h>
#include <zmq.h>

#include "internal.h"
#include "wire/buf.h"
#include "wire/link.h"
#include "wire/stream.h"
#include "tgraph/value.h"

#define TG__WIRE_PART_MIN ((size_t)64 << 10)

/* Send one message on link sock: the routing id rid (rid_len 0: none), then
 * head, then (when v is not NULL) value v, its streamed leaves sent ahead
 * through st. peer_misalign: the receiver's (0 when unknown). *bytes (may
 * be NULL) grows by the bytes of v that cross the link: a leaf carried in
 * a shared segment counts its descriptor (st counts the bytes carried:
 * shm_out). Large leaves are handed to ZeroMQ
 * without a copy (a reference to v is kept until it has sent them).
 * Errors: TG_ENOMEM, TG_EIO (the socket refused; errno says why): the
 * message may be half sent, so the caller drops the peer. */
int tg__wire_send(tg__link *sock, const void *rid, size_t rid_len, const tg__wbuf *head,
                  const tg_value *v, int peer_misalign, tg__stream *st,
                  uint64_t *bytes, tg_error *err);

/* This process's misalignment of large received parts (0..63). */
int tg__wire_misalign(void);

/* Decode a value from parts[0..n-1] (received parts; the value may take
 * over data parts, leaving them empty) and the streamed values of st it
 * names. *used is the number of parts it occupied. *bytes (may be NULL)
 * grows by the value's bytes that crossed the link, as tg__wire_send
 * counts them. TG_EFORMAT, TG_ENOMEM, or the decoder's own
 * codes. */
int tg__wire_recv(zmq_msg_t *parts, size_t n, tg__stream *st, size_t *used,
                  tg_value **out /* OUT */, uint64_t *bytes, tg_error *err);

/* A value received to be sent on as it came: a result moved from the
 * worker that made it to another through the run, which has no use for
 * it. Its skeleton stays encoded (a map of 100k string keys takes some
 * ms to decode and encode again, on the path from one worker's task to
 * the next's) and its large leaves are values as tg__wire_recv makes
 * them. Only the skeleton's header is checked here (format, version,
 * checksum, sizes): the receiving worker decodes it as hostile input, as
 * it does every value. Used by one thread. */
typedef struct tg__wire_held tg__wire_held;

/* tg__wire_recv's work but the skeleton's decoding: *out holds the value
 * (taking over parts[1]). */
int tg__wire_hold(zmq_msg_t *parts, size_t n, tg__stream *st, size_t *used,
                  tg__wire_held **out /* OUT */, uint64_t *bytes, tg_error *err);

/* The value h holds, decoded as tg__wire_recv decodes (h is left as it
 * is: its leaves are shared with *out). TG_EFORMAT and the decoder's
 * codes: the skeleton or a leaf's place in it is bad; TG_ENOMEM. */
int tg__wire_held_decode(const tg__wire_held *h, tg_value **out /* OUT */, tg_error *err);

/* tg__wire_send of a held value (which may be sent any number of times). */
int tg__wire_send_held(tg__link *sock, const void *rid, size_t rid_len, const tg__wbuf *head,
                       tg__wire_held *h, int peer_misalign, tg__stream *st, uint64_t *bytes,
                       tg_error *err);

void tg__wire_held_free(tg__wire_held *h);

/* Roughly how many bytes v encodes to, counting only up to a little past
 * `limit` (a cheap test of "is v small"). */
size_t tg__wire_estimate(const tg_value *v, size_t limit);

#endif /* TG_WIRE_WIRE_H */
