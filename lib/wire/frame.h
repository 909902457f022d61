/* lib/wire/frame.h: framed messages over an
 * AF_UNIX stream socket, with file descriptors passed alongside (the
 * local link's framing, wire/link_local.c).
 *
 * Thread safety: a tg__pconn is used by one thread at a time.
 */
#ifndef TG_WIRE_FRAME_H
#define TG_WIRE_FRAME_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "internal.h"
#include "wire/buf.h"
#include "serial/format.h"

/* ---- framed messages  --------------------------------------- */

enum {
  TG__PM_HELLO = 1,   /* worker -> parent: started (body: varint pid) */
  TG__PM_BATCH = 2,   /* parent -> worker: tasks to run */
  TG__PM_CONTROL = 3, /* parent -> worker: segments to forget / release */
  TG__PM_RESULTS = 4, /* worker -> parent: the outcomes of one batch (u32
                         n; per task u8 status, varint start ns on
                         CLOCK_MONOTONIC, varint duration ns, then the
                         value or varint zigzag code + str message) */
  TG__PM_LOG = 6,     /* worker -> parent: a tg_task_log() line */
};

/* Header: u32 body length, u8 type, u8 0, u16 fds passed with it, u32 seq
 * (the sender's message number; for results, the batch's), u32 ack (a
 * worker's last handled parent message, for diagnostics). */
#define TG__PMSG_HDR 16
#define TG__PMSG_MAX ((size_t)1 << 31) /* longest body accepted */

typedef struct tg__pmsg {
  uint8_t type;
  uint16_t nfds;
  uint32_t seq, ack;
  const uint8_t *body; /* valid until the next tg__pconn_fill */
  size_t len;
} tg__pmsg;

/* One end of a socket: queued output with the fds to pass along, and
 * received bytes with the fds that came with them.
 * Thread safety: one thread at a time. */
typedef struct tg__pconn {
  int fd;
  tg__wbuf out;           /* framed messages not yet sent */
  size_t out_pos;         /* bytes of out already sent */
  int *ofd;               /* fds to pass (borrowed: kept open by the
                             sender until sent) */
  size_t nofd, ofd_cap, ofd_pos;
  size_t msg_at;          /* offset of the message being written */
  uint16_t msg_fds;       /* fds queued for it */
  tg__wbuf in;            /* bytes received */
  size_t in_pos;          /* start of the first unhandled message */
  int *ifd;               /* fds received, not yet taken (owned) */
  size_t nifd, ifd_cap, ifd_pos;
  size_t msg_fd_end;      /* fds of the current message end here */
  uint64_t sent, received; /* bytes, for statistics */
} tg__pconn;

void tg__pconn_init(tg__pconn *c, int fd);
/* Close the socket and every received fd; free the buffers. */
void tg__pconn_close(tg__pconn *c);
/* Start a message; write its body to c->out, queue its fds with
 * tg__pconn_add_fd, then call tg__pconn_end. */
int tg__pconn_begin(tg__pconn *c, uint8_t type, uint32_t seq, uint32_t ack);
int tg__pconn_add_fd(tg__pconn *c, int fd);
void tg__pconn_end(tg__pconn *c);
/* Drop the message being written (its fds too). */
void tg__pconn_abort(tg__pconn *c);
/* Send what is queued. TG_OK when all went, 1 when a non-blocking socket
 * is full, a negative errno code when the peer is gone. */
int tg__pconn_flush(tg__pconn *c, bool block);
/* Receive what is there (block: wait for something). Returns the bytes
 * read (> 0), 0 at end of stream, 1 never; TG_EAGAIN-like: -EAGAIN when a
 * non-blocking socket has nothing; another negative errno on error. */
ssize_t tg__pconn_fill(tg__pconn *c, bool block);
/* The next complete message: 1 (in *m), 0 when none yet, TG_EPROTO when
 * the stream is malformed. */
int tg__pconn_next(tg__pconn *c, tg__pmsg *m);
/* The next fd of the current message (owned by the caller), or -1. */
int tg__pconn_take_fd(tg__pconn *c);
/* The current message is handled: close fds of it nobody took, and
 * compact the input now and then. */
void tg__pconn_done(tg__pconn *c);

#endif /* TG_WIRE_FRAME_H */
