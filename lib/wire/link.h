/* lib/wire/link.h: the transport under the worker protocol: one end of
 * a connection that carries multipart messages, with two kinds.
 *
 *   zmq    a ZeroMQ socket (a client's DEALER, a worker's ROUTER whose
 *          messages start with the peer's routing id); what it does with
 *          messages is ZeroMQ's (queueing, reconnecting, CURVE).
 *   local  one end of an AF_UNIX stream socketpair to a forked worker or
 *          its parent (wire/link_local.c). Parts travel framed (wire/frame.h);
 *          a part of TG__SEG_MIN bytes or more is copied once into a memfd
 *          segment of the sender, whose fd goes along (SCM_RIGHTS) and is
 *          mapped by the receiver: its bytes never cross the socket. The
 *          received part wraps the mapping (its data is page-aligned), and
 *          when its last user lets it go the receiver tells the sender,
 *          which then reuses the segment (populated pages: memcpy speed).
 *          A local link never streams (wire/stream.h).
 *
 * Sending takes parts one by one, as zmq_msg_send does: TG__LINK_MORE
 * says another part of the same message follows. A sent part is the
 * link's (closed by it, on failure too). A local link queues what the
 * socket does not take at once: tg__link_flush() sends it on, and
 * tg__link_pollitem() asks for POLLOUT while some is left.
 *
 * Receiving reads one whole message at a time, never blocking.
 *
 * Hostile input: a local link checks every frame (lengths against the
 * bytes present, the part count, one fd per segment part, the segment's
 * size) and fails with TG_EPROTO on anything malformed; the caller drops
 * the peer.
 *
 * Thread safety: a link belongs to one thread. Received parts may be
 * closed from any thread (a segment's release notice is queued under a
 * lock and sent by the link's thread at its next flush).
 * Fork: a forked child must not use its parent's links.
 */
#ifndef TG_WIRE_LINK_H
#define TG_WIRE_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "internal.h"

#define TG__LINK_MORE 1 /* another part of this message follows */

/* What crossed a link, for tests and benchmarks. */
typedef struct tg__link_stats {
  uint64_t sock_out, sock_in; /* bytes written to / read from the socket */
  uint64_t seg_out, seg_in;   /* part bytes sent / received in segments */
  uint64_t seg_copied;        /* bytes copied into segments to send them */
  uint64_t fds_out, fds_in;   /* segment fds passed */
} tg__link_stats;

typedef struct tg__link tg__link;

typedef struct tg__link_ops {
  int (*send)(tg__link *l, zmq_msg_t *m, int flags);
  int (*recv)(tg__link *l, zmq_msg_t *parts, size_t max, size_t *n);
  int (*flush)(tg__link *l);
  void (*pollitem)(tg__link *l, zmq_pollitem_t *it);
  void (*close)(tg__link *l);
} tg__link_ops;

struct tg__link {
  const tg__link_ops *ops;
  bool streams;            /* large values may be streamed (zmq only) */
  int misalign;            /* of large received parts (wire/wire.h) */
  tg__link_stats st;       /* the owner's thread only */
};

/* A link over ZeroMQ socket `sock` (taken: tg__link_close closes it).
 * NULL when out of memory (the socket is then not taken). */
tg__link *tg__link_zmq(void *sock);
/* The socket of a zmq link (for options and monitors), else NULL. */
void *tg__link_zmq_socket(tg__link *l);

/* A local link over `fd`, one end of an AF_UNIX stream socketpair (taken,
 * made non-blocking). track: the link's segment fds are tracked
 * (util/fdtrack.h) so that workers forked later do not keep them. NULL
 * when out of memory (fd is then closed). */
tg__link *tg__link_local(int fd, bool track);

/* Send part m (taken, closed on failure too); flags: TG__LINK_MORE.
 * TG_OK, TG_ENOMEM, TG_EIO (the peer is gone or the socket failed: the
 * message may be half sent, so the caller drops the peer). */
static inline int tg__link_send(tg__link *l, zmq_msg_t *m, int flags) {
  return l->ops->send(l, m, flags);
}
/* Send a copy of len bytes at p as a part. */
int tg__link_send_copy(tg__link *l, const void *p, size_t len, int flags);

/* Read one whole message into parts[0 .. *n) (received parts: the caller
 * closes them). 1: a message; 0: none ready; TG_ELIMIT: it had more than
 * `max` parts (*n is 1: parts[0] holds its first part, the rest was read
 * and dropped); TG_EPROTO: malformed (local); TG_EIO: the peer is gone
 * (local: end of stream or a socket error). */
static inline int tg__link_recv(tg__link *l, zmq_msg_t *parts, size_t max, size_t *n) {
  return l->ops->recv(l, parts, max, n);
}

/* Send what is queued (and, local, the release notices of segments the
 * peer sent us). TG_OK, or TG_EIO when the peer is gone. */
static inline int tg__link_flush(tg__link *l) { return l->ops->flush(l); }

/* Fill a poll item for the link: its socket or fd, POLLIN, and POLLOUT
 * while queued output waits. */
static inline void tg__link_pollitem(tg__link *l, zmq_pollitem_t *it) {
  l->ops->pollitem(l, it);
}

/* Close the link and free it (l may be NULL). Queued output is dropped;
 * parts received earlier stay valid. */
void tg__link_close(tg__link *l);

#endif /* TG_WIRE_LINK_H */
