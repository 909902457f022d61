/* lib/wire/shm.h: large values in shared memory between the two ends of
 * a ZeroMQ connection on one host: a run and a keyless worker of the same
 * user, connected over the worker's Unix socket (wire/usersock.c).
 *
 * Streamed (wire/stream.h), a large array costs the receiver one copy
 * per chunk and a page fault per 4 KiB of ZeroMQ's fresh buffers. Here
 * the sender copies it once into a memfd segment of its own (pooled: its
 * pages are already populated when reused) and sends a small descriptor
 * in place of the data; the receiver opens the segment through
 * /proc/<sender pid>/fd/<fd> and maps it as the value's memory. A value
 * whose bytes lie in a segment the peer sent (a worker returning an
 * argument) goes back as a reference to it: no copy either way.
 *
 * Who the peer is: its pid and uid come from the connection
 * (SO_PEERCRED, as ZeroMQ's "Peer-Address" of a Unix socket peer: never
 * from what it says). Only a peer of this user's is used.
 *
 * Hostile input: a descriptor names a file descriptor of the peer's,
 * which the peer may swap (dup2) at any moment. The receiver resolves
 * /proc/<pid>/fd/<fd> once, O_PATH (no call into the file's filesystem:
 * a file on the peer's own FUSE mount cannot stall it), and checks its
 * own descriptor of it from then on: a memfd segment of ours by name
 * ("memfd:tgraph"), a regular file with no links; opened, it must be
 * sealed against shrinking (segments are created sealed at their size,
 * wire/seg.h: the peer cannot truncate it under our mapping to make us
 * fault) and have exactly the size announced; and the segment's last
 * TG__SHM_TOKEN bytes must hold the token the descriptor gives (against
 * a pid or descriptor reused since it was sent). Anything else is
 * TG_EFORMAT: the caller drops the peer.
 *
 * Negotiation (wire/proto.h, HELLO and WELCOME): the client offers a
 * probe segment; the worker says whether it could open it and offers its
 * own; the client says (SEG_OK) whether it could open the worker's. Each
 * direction is used only once proven; otherwise values are streamed as
 * before. A worker drops its probe, unproven, when the client sends
 * anything else first or stays silent for a few seconds. TGRAPH_NO_SHM=1 in either process's environment turns it off.
 *
 * Lifetimes: a sender's segment stays open and unchanged while the peer
 * may map it (from sending until the peer's SEG_FREE naming it) and while
 * a value of the sender's own wraps it (sent back); then it returns to
 * the connection's pool (wire/segbook.h keeps that account for the
 * connection). Segment fds are tracked and mapped
 * MADV_DONTFORK (wire/seg.h): forked children keep none, and memfds
 * have no name: nothing is left behind when either side is killed.
 * A mapping received counts in the stream's pool (tg__stream_pool) from
 * its mapping until its release.
 *
 * Thread safety: a tg__shm belongs to its connection's thread; values
 * over its segments may be released from any thread (their release is
 * queued under a lock and sent by the connection's thread,
 * tg__shm_releases).
 */
#ifndef TG_WIRE_SHM_H
#define TG_WIRE_SHM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <zmq.h>

#include "internal.h"
#include "wire/buf.h"

struct tg__stream_pool;

#define TG__SHM_TOKEN 16     /* bytes of a segment's token */
#define TG__SHM_MAX_LENT 256 /* segments a connection lends at once, at most */

typedef struct tg__shm tg__shm;

/* Whether this process may use segments (TGRAPH_NO_SHM is not set). */
bool tg__shm_allowed(void);
/* The pid of the peer that sent part (a received one) when it came over
 * a Unix socket from a process of this user, else 0. */
pid_t tg__shm_peer_pid(zmq_msg_t *part);

/* Segment state for a connection to process `peer` (NULL: out of
 * memory). */
tg__shm *tg__shm_new(pid_t peer);
/* The peer's pid, once known. */
void tg__shm_set_peer(tg__shm *sh, pid_t peer);
/* The connection ended: segments of ours go once no value wraps them. */
void tg__shm_free(tg__shm *sh);

/* Offer a probe segment: appends varint fd, TOKEN bytes to h. */
int tg__shm_probe_offer(tg__shm *sh, tg__wbuf *h);
/* Read the peer's probe offer at r and try it: true when it opened. */
bool tg__shm_probe_try(tg__shm *sh, tg__rbuf *r);
/* The peer answered our probe: drop it; ok: send it segments from now.
 * Also how one that goes unanswered is dropped (ok false). */
void tg__shm_probe_done(tg__shm *sh, bool ok);
/* Whether our probe is offered and not answered yet (sh may be NULL). */
bool tg__shm_probe_pending(const tg__shm *sh);
/* Segments may go to the peer / come from it. */
bool tg__shm_can_send(const tg__shm *sh);
void tg__shm_set_recv(tg__shm *sh, bool ok);

/* Send len bytes at p: appends the descriptor to d (a copy into a
 * segment, or a reference to the peer's own). TG_ENOMEM (or -errno). */
int tg__shm_put(tg__shm *sh, const void *p, size_t len, tg__wbuf *d);

/* The data of a received descriptor (desc, dlen) for a value of len
 * bytes (at most limit): *p, to be let go with release(*ctx, *p) from any
 * thread. Its segment's size counts in pool (may be NULL) until then. TG_EFORMAT (hostile or bad),
 * TG_ELIMIT (over the pool or `limit`), TG_ENOMEM; err says which. */
int tg__shm_get(tg__shm *sh, const void *desc, size_t dlen, size_t len, uint64_t limit,
                struct tg__stream_pool *pool, void **p, void (**release)(void *, void *),
                void **ctx, tg_error *err);

/* Append to h the SEG_FREE message naming the peer's segments we let go
 * of (u8 TG__M_SEG_FREE, varint n, n x varint id); false (h untouched)
 * when there are none. Also pools our segments that came free on other
 * threads and drops idle ones. */
bool tg__shm_releases(tg__shm *sh, tg__wbuf *h);
/* The peer let go of the ids at r (SEG_FREE). TG_EFORMAT: not ours. */
int tg__shm_released(tg__shm *sh, tg__rbuf *r);

#endif /* TG_WIRE_SHM_H */
