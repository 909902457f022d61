/* lib/remote/wire.h: values on the wire of the worker protocol: the
 * project's serializer format, with large arrays and bytes as message
 * parts of their own so that they are neither copied into an encoding
 * buffer on the way out nor, when the receive buffer is suitably
 * aligned, on the way in.
 *
 * A value is a run of consecutive parts of a multipart message:
 *   part 0  descriptor: u8 1, varint n, then per large leaf: varint pad,
 *           varint depth, depth x varint index (list position or map entry
 *           position, from the root), u8 type (6 ndarray: u8 dtype, u8
 *           ndim, ndim x varint dim; 5 bytes: varint length)
 *   part 1  the value encoded with tg_encode, each large leaf replaced by
 *           null (the "skeleton")
 *   parts 2 .. 2+n-1  the leaves' raw data, in descriptor order
 * A leaf is large from TG__WIRE_PART_MIN bytes; one part holds at most
 * TG__WIRE_PART_MAX bytes (libzmq cannot write more in one frame).
 *
 * Alignment: arrays must be 64-byte aligned, and libzmq puts a large part
 * at a fixed offset from a 64-byte boundary of its buffer (its
 * "misalignment", which each end measures and tells the other in the
 * handshake). A leaf part starts with `pad` zero bytes (< 64) chosen so
 * that its data lands aligned: the receiver then keeps ZeroMQ's buffer as
 * the array's memory. Padding is only sent when the zeros already lie in
 * front of the data in memory (arrays received from a peer); other arrays
 * go with no padding and the receiver copies them once, into a buffer
 * with zeros in front, so that they can travel on without a copy.
 *
 * Decoding treats everything as hostile: paths must lead through fresh
 * containers to a null, sizes must match the parts exactly, counts are
 * bounded by the parts present.
 *
 * Thread safety: the calls use only their arguments; a socket is used by
 * its owning thread only.
 */
#ifndef TG_REMOTE_WIRE_H
#define TG_REMOTE_WIRE_H

#include <stdbool.h>
#include <stdint.h>
#include <zmq.h>

#include "internal.h"
#include "tgraph/value.h"

#define TG__WIRE_PART_MIN ((size_t)64 << 10)
#define TG__WIRE_PART_MAX (((size_t)1 << 31) - 1)

/* Send v as the next parts of a message on sock (the caller sent the
 * parts before). `last`: v's final part ends the message. peer_misalign:
 * the receiver's (0 when unknown). *bytes (may be
 * NULL) grows by the bytes of v's parts. Large leaves are handed to ZeroMQ
 * without a copy (a reference to v is kept until it has sent them).
 * Errors: TG_ENOMEM, TG_ELIMIT (a leaf over TG__WIRE_PART_MAX), TG_EIO
 * (the socket refused; errno says why). */
int tg__wire_send(void *sock, const tg_value *v, bool last, int peer_misalign,
                  uint64_t *bytes, tg_error *err);

/* This process's misalignment of large received parts (0..63). */
int tg__wire_misalign(void);

/* Decode a value from parts[0..n-1] (received parts; the value may take
 * over data parts, leaving them empty). *used is the number of parts it
 * occupied. *bytes (may be NULL) grows by their size. TG_EFORMAT,
 * TG_ENOMEM, or the decoder's own codes. */
int tg__wire_recv(zmq_msg_t *parts, size_t n, size_t *used,
                  tg_value **out /* OUT */, uint64_t *bytes, tg_error *err);

/* Roughly how many bytes v encodes to, counting only up to a little past
 * `limit` (a cheap test of "is v small"). */
size_t tg__wire_estimate(const tg_value *v, size_t limit);

#endif /* TG_REMOTE_WIRE_H */
