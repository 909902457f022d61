/* lib/wire/link_local.c: a link over an AF_UNIX stream socketpair (see
 * wire/link.h), framed with wire/frame.h.
 *
 * Frames:
 *   MSG      u32 nparts, then per part: u8 0, varint len, len bytes
 *            (inline), or u8 1, varint segment id, varint len, varint
 *            segment size (the segment's fd comes with the frame, one per
 *            such part, in order; the part is the segment's first len
 *            bytes), or u8 2, varint segment id, varint offset, varint
 *            len: bytes of a segment of the receiver's that the sender
 *            mapped (it received them and sends them on: no copy)
 *   RELEASE  varint n, n x varint segment id: segments of the receiver's
 *            it may write again (the peer let go of their mappings)
 *
 * A sender's segments are pooled: a segment whose release came back is
 * reused for the next large part of a similar size, so its pages are
 * already populated (a fresh shared page costs a fault and a zeroed page
 * on first touch, ten times copying it).
 *
 * Received segments are mapped and their fds closed at once: a mapping
 * is released by the part's free function (any thread), which queues the
 * release notice for the link's thread. A large part whose bytes lie in a
 * mapping received on the same link goes back as a reference (kind 2):
 * the peer's segment is then held by the peer's released-or-not state and
 * by each such part it received, and is reused only once all are gone.
 * What segments each end lent and borrowed is kept by wire/segbook.h. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "wire/buf.h"
#include "wire/frame.h"
#include "wire/link.h"
#include "wire/seg.h"
#include "wire/segbook.h"
#include "internal.h"
#include "util/fdtrack.h"

#define LOCAL_MAX_PARTS (1u << 20)   /* parts of one message */

enum { F_MSG = 1, F_RELEASE = 2 };
enum { P_INLINE = 0, P_SEG = 1, P_BACK = 2 };

typedef struct llink {
  tg__link base;
  tg__pconn c;
  bool track;
  bool broken;
  tg__segbook book;      /* segments ours lent and the peer's borrowed */
  bool in_msg;           /* a message is being written */
  size_t count_at;       /* where its part count goes */
  uint32_t nparts;
} llink;

/* The free functions of received parts (zmq_msg_init_data's order). */
static void borrowed_free(void *data, void *hint) { tg__segbook_unborrow(hint, data); }
static void held_free(void *data, void *hint) { tg__segbook_unhold(hint, data); }

/* ---- sending ------------------------------------------------------------------ */

/* A segment of ours holding a copy of len bytes at p, lent to the peer
 * under a new id; NULL when out of memory or fds. */
static tg__lent *seg_for(llink *k, const void *p, size_t len) {
  tg__lent *o = tg__segbook_take(&k->book, tg__seg_class(len));
  if (!o) return NULL;
  memcpy(o->s.map, p, len);
  if (!tg__segbook_lend(&k->book, o)) {
    tg__segbook_drop(&k->book, o);
    return NULL;
  }
  k->base.st.seg_copied += len;
  return o;
}

static int begin_msg(llink *k) {
  if (tg__pconn_begin(&k->c, F_MSG, 0, 0) != TG_OK ||
      !tg__wbuf_reserve(&k->c.out, 4))
    return TG_ENOMEM;
  k->count_at = k->c.out.len;
  k->c.out.len += 4;
  k->nparts = 0;
  k->in_msg = true;
  return TG_OK;
}

static int put_part(llink *k, zmq_msg_t *m) {
  size_t len = zmq_msg_size(m);
  const void *p = zmq_msg_data(m);
  uint64_t id, off;
  if (k->nparts == LOCAL_MAX_PARTS) return TG_ELIMIT;
  if (len < TG__SEG_MIN) {
    if (!tg__wbuf_reserve(&k->c.out, 1 + TG__VARINT_MAX + len)) return TG_ENOMEM;
    tg__wbuf_u8(&k->c.out, P_INLINE);
    tg__wbuf_varint(&k->c.out, len);
    tg__wbuf_bytes(&k->c.out, p, len);
  } else if (tg__segbook_find(&k->book, p, len, &id, &off)) { /* the peer's own bytes */
    if (!tg__wbuf_reserve(&k->c.out, 1 + 3 * TG__VARINT_MAX)) return TG_ENOMEM;
    tg__wbuf_u8(&k->c.out, P_BACK);
    tg__wbuf_varint(&k->c.out, id);
    tg__wbuf_varint(&k->c.out, off);
    tg__wbuf_varint(&k->c.out, len);
    k->base.st.seg_out += len;
  } else {
    tg__lent *o = seg_for(k, p, len);
    if (!o) return TG_ENOMEM;
    if (!tg__wbuf_reserve(&k->c.out, 1 + 3 * TG__VARINT_MAX) ||
        tg__pconn_add_fd(&k->c, o->s.fd) != TG_OK)
      return TG_ENOMEM; /* the segment stays busy until the link closes */
    tg__wbuf_u8(&k->c.out, P_SEG);
    tg__wbuf_varint(&k->c.out, o->id);
    tg__wbuf_varint(&k->c.out, len);
    tg__wbuf_varint(&k->c.out, o->s.size);
    k->base.st.seg_out += len;
    k->base.st.fds_out++;
  }
  k->nparts++;
  return TG_OK;
}

static int lflush(tg__link *l);

static int lsend(tg__link *l, zmq_msg_t *m, int flags) {
  llink *k = (llink *)l;
  int rc = k->broken ? TG_EIO : TG_OK;
  if (rc == TG_OK && !k->in_msg) rc = begin_msg(k);
  if (rc == TG_OK) rc = put_part(k, m);
  zmq_msg_close(m);
  if (rc != TG_OK) {
    if (k->in_msg) tg__pconn_abort(&k->c);
    k->in_msg = false;
    return rc == TG_EIO ? rc : TG_ENOMEM;
  }
  if (flags & TG__LINK_MORE) return TG_OK;
  memcpy(k->c.out.p + k->count_at, &k->nparts, 4);
  tg__pconn_end(&k->c);
  k->in_msg = false;
  return lflush(l);
}

/* Tell the peer which of its segments we let go of. */
static int send_releases(llink *k) {
  size_t n;
  uint64_t *ids = tg__segbook_let_go(&k->book, &n);
  int rc = TG_OK;
  if (n && (tg__pconn_begin(&k->c, F_RELEASE, 0, 0) != TG_OK ||
            !tg__wbuf_reserve(&k->c.out, (n + 1) * TG__VARINT_MAX)))
    rc = TG_ENOMEM; /* the peer keeps them until the link closes */
  if (n && rc == TG_OK) {
    tg__segbook_put_ids(&k->c.out, ids, n);
    tg__pconn_end(&k->c);
  }
  tg__free(ids);
  return rc;
}

static int lflush(tg__link *l) {
  llink *k = (llink *)l;
  if (k->broken) return TG_EIO;
  if (!k->in_msg) send_releases(k);
  tg__segbook_tidy(&k->book);
  size_t before = k->c.sent;
  int rc = tg__pconn_flush(&k->c, false);
  l->st.sock_out += k->c.sent - before;
  if (rc < 0) {
    k->broken = true;
    return TG_EIO;
  }
  return TG_OK;
}

/* ---- receiving ---------------------------------------------------------------- */

/* Segments of ours the peer let go of: back to the pool. */
static int releases(llink *k, const tg__pmsg *m) {
  tg__rbuf r;
  tg__rbuf_init(&r, m->body, m->len);
  if (m->nfds) return TG_EPROTO;
  return tg__segbook_returned(&k->book, &r) ? TG_OK : TG_EPROTO;
}

/* A part of one of our segments, sent back by the peer. */
static int back_part(llink *k, tg__rbuf *r, zmq_msg_t *out) {
  uint64_t id = tg__rbuf_varint(r), off = tg__rbuf_varint(r), len = tg__rbuf_varint(r);
  tg__lent *o = r->bad ? NULL : tg__segbook_lent(&k->book, id, off, len);
  if (!o || len < TG__SEG_MIN) return TG_EPROTO;
  void *bk = tg__segbook_hold(&k->book, o);
  if (!bk) return TG_ENOMEM;
  if (zmq_msg_init_data(out, (uint8_t *)o->s.map + off, (size_t)len, held_free, bk) != 0) {
    held_free(NULL, bk);
    return TG_ENOMEM;
  }
  k->base.st.seg_in += len;
  return TG_OK;
}

/* The segment part at r, whose fd is the message's next. */
static int seg_part(llink *k, tg__rbuf *r, zmq_msg_t *out) {
  uint64_t id = tg__rbuf_varint(r), len = tg__rbuf_varint(r), size = tg__rbuf_varint(r);
  if (r->bad || len < TG__SEG_MIN || len > size || size > SIZE_MAX / 2) return TG_EPROTO;
  int fd = tg__pconn_take_fd(&k->c);
  if (fd < 0) return TG_EPROTO;
  void *map = NULL;
  int rc = tg__seg_map(fd, (size_t)size, true, &map);
  close(fd);
  if (rc != TG_OK) return rc == TG_EPROTO ? TG_EPROTO : TG_EIO;
  void *g = tg__segbook_borrow(&k->book, map, (size_t)size, id, NULL);
  if (!g) {
    munmap(map, (size_t)size);
    return TG_ENOMEM;
  }
  if (zmq_msg_init_data(out, map, (size_t)len, borrowed_free, g) != 0) {
    borrowed_free(map, g);
    return TG_ENOMEM;
  }
  k->base.st.seg_in += len;
  k->base.st.fds_in++;
  return TG_OK;
}

static int parse_msg(llink *k, const tg__pmsg *m, zmq_msg_t *parts, size_t max,
                     size_t *n) {
  tg__rbuf r;
  tg__rbuf_init(&r, m->body, m->len);
  const uint8_t *cnt = tg__rbuf_bytes(&r, 4);
  uint32_t np = 0;
  if (cnt) memcpy(&np, cnt, 4);
  /* Each part takes 2 bytes at least; a local peer has no excuse for more
   * parts than the reader takes. */
  int rc = cnt && np > 0 && np <= m->len / 2 && np <= max ? TG_OK : TG_EPROTO;
  for (uint32_t i = 0; rc == TG_OK && i < np; i++) {
    uint8_t kind = tg__rbuf_u8(&r);
    if (r.bad) {
      rc = TG_EPROTO;
    } else if (kind == P_INLINE) {
      uint64_t len = tg__rbuf_count(&r, TG__SEG_MIN - 1);
      const uint8_t *p = r.bad ? NULL : tg__rbuf_bytes(&r, (size_t)len);
      if (!p) {
        rc = TG_EPROTO;
      } else if (zmq_msg_init_size(&parts[*n], (size_t)len) != 0) {
        rc = TG_ENOMEM;
      } else {
        if (len) memcpy(zmq_msg_data(&parts[*n]), p, (size_t)len);
        (*n)++;
      }
    } else if (kind == P_SEG || kind == P_BACK) {
      rc = kind == P_SEG ? seg_part(k, &r, &parts[*n]) : back_part(k, &r, &parts[*n]);
      if (rc == TG_OK) (*n)++;
    } else {
      rc = TG_EPROTO;
    }
  }
  /* Every byte and every fd of the frame accounted for. */
  if (rc == TG_OK && (!tg__rbuf_end(&r) || k->c.ifd_pos < k->c.msg_fd_end)) rc = TG_EPROTO;
  if (rc != TG_OK) {
    for (size_t i = 0; i < *n; i++) zmq_msg_close(&parts[i]);
    *n = 0;
  }
  return rc;
}

static int lrecv(tg__link *l, zmq_msg_t *parts, size_t max, size_t *n) {
  llink *k = (llink *)l;
  *n = 0;
  if (k->broken) return TG_EIO;
  for (;;) {
    tg__pmsg m;
    int got = tg__pconn_next(&k->c, &m);
    if (got == 1) {
      int rc = m.type == F_MSG       ? parse_msg(k, &m, parts, max, n)
               : m.type == F_RELEASE ? releases(k, &m)
                                     : TG_EPROTO;
      tg__pconn_done(&k->c); /* closes fds nobody took */
      if (rc != TG_OK) {
        if (rc == TG_EPROTO || rc == TG_EIO) k->broken = true;
        return rc;
      }
      if (m.type == F_MSG) return 1;
      continue;
    }
    if (got < 0) {
      k->broken = true;
      return TG_EPROTO;
    }
    ssize_t r = tg__pconn_fill(&k->c, false);
    if (r == -EAGAIN) return 0;
    if (r == TG_EPROTO || r == TG_ENOMEM) {
      k->broken = r == TG_EPROTO;
      return (int)r;
    }
    if (r <= 0) {
      k->broken = true;
      return TG_EIO;
    }
    l->st.sock_in += (uint64_t)r;
  }
}

static void lpollitem(tg__link *l, zmq_pollitem_t *it) {
  llink *k = (llink *)l;
  short ev = ZMQ_POLLIN;
  if (k->c.out_pos < k->c.out.len) ev |= ZMQ_POLLOUT;
  *it = (zmq_pollitem_t){NULL, k->c.fd, ev, 0};
}

static void lclose(tg__link *l) {
  llink *k = (llink *)l;
  if (k->track) tg__fd_untrack(k->c.fd);
  tg__pconn_close(&k->c);
  /* Parts received keep their segments until they are freed. */
  tg__segbook_fini(&k->book);
  tg__free(k);
}

static const tg__link_ops lops = {lsend, lrecv, lflush, lpollitem, lclose};

tg__link *tg__link_local(int fd, bool track) {
  llink *k = tg__calloc(1, sizeof *k);
  if (!k || tg__segbook_init(&k->book, 0, track) != TG_OK) {
    tg__free(k);
    if (track) tg__fd_untrack(fd);
    close(fd);
    return NULL;
  }
  k->base.ops = &lops;
  k->base.streams = false;
  k->base.misalign = 0; /* segments are mapped page-aligned */
  k->track = track;
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  tg__pconn_init(&k->c, fd);
  return &k->base;
}
