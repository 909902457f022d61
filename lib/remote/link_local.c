/* lib/remote/link_local.c: a link over an AF_UNIX stream socketpair (see
 * link.h), framed with remote/frame.h.
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
 * on first touch, ten times copying it). The pool keeps LOCAL_POOL bytes
 * at most and drops segments idle for LOCAL_IDLE seconds.
 *
 * Received segments are mapped and their fds closed at once: a mapping
 * is released by the part's free function (any thread), which queues the
 * release notice on `notices`, shared with the link and refcounted so
 * that a part outliving its link is still freed. A large part whose
 * bytes lie in a mapping received on the same link goes back as a
 * reference (kind 2): the peer's segment is then held by the peer's
 * released-or-not state and by each such part it received (oseg.refs),
 * and is reused only once all are gone. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "remote/buf.h"
#include "remote/frame.h"
#include "remote/idmap.h"
#include "remote/link.h"
#include "remote/seg.h"
#include "internal.h"
#include "util/fdtrack.h"

#define LOCAL_POOL ((size_t)1 << 30) /* bytes of free segments kept */
#define LOCAL_IDLE 2.0               /* seconds a free segment is kept */
#define LOCAL_MAX_PARTS (1u << 20)   /* parts of one message */

enum { F_MSG = 1, F_RELEASE = 2 };
enum { P_INLINE = 0, P_SEG = 1, P_BACK = 2 };

/* A segment of ours sent to the peer. refs: 1 while the peer holds it
 * (until its release notice) + each part of ours wrapping it (sent back
 * to us); the last one returns it to the pool (the link's thread) or,
 * once the link is closed, destroys it (any thread). */
typedef struct oseg {
  tg__seg s;
  uint64_t id;
  _Atomic unsigned refs;
  bool track;
  struct oseg *next; /* notices' dead list */
} oseg;

typedef struct notices {
  pthread_mutex_t mu;    /* guards ids, n, cap, gone */
  _Atomic unsigned refs; /* the link + each received segment part alive */
  uint64_t *ids;
  size_t n, cap;
  bool gone;             /* the link is closed: nobody to tell */
  struct rseg **live;    /* received segments mapped now */
  size_t nlive, cap_live;
  oseg *dead;            /* segments of ours whose last user went */
} notices;

typedef struct rseg {   /* a received segment: the part's free hint */
  void *map;
  size_t size;
  uint64_t id;
  notices *nt;
} rseg;

typedef struct llink {
  tg__link base;
  tg__pconn c;
  bool track;
  bool broken;
  notices *nt;
  tg__segpool pool;      /* free segments of ours */
  tg__idmap busy;        /* id -> oseg the peer holds */
  uint64_t next_id;
  bool in_msg;           /* a message is being written */
  size_t count_at;       /* where its part count goes */
  uint32_t nparts;
  double last_trim;
} llink;

static void notices_unref(notices *nt) {
  if (atomic_fetch_sub(&nt->refs, 1) != 1) return;
  pthread_mutex_destroy(&nt->mu);
  tg__free(nt->ids);
  tg__free(nt->live);
  tg__free(nt);
}

static void rseg_free(void *data, void *hint) {
  (void)data;
  rseg *r = hint;
  munmap(r->map, r->size);
  notices *nt = r->nt;
  pthread_mutex_lock(&nt->mu);
  for (size_t i = 0; i < nt->nlive; i++)
    if (nt->live[i] == r) {
      nt->live[i] = nt->live[--nt->nlive];
      break;
    }
  if (!nt->gone) {
    if (nt->n == nt->cap) {
      size_t c = nt->cap ? nt->cap * 2 : 16;
      uint64_t *p = tg__realloc(nt->ids, c * sizeof *p);
      if (p) { /* else the peer keeps the segment until the link closes */
        nt->ids = p;
        nt->cap = c;
      }
    }
    if (nt->n < nt->cap) nt->ids[nt->n++] = r->id;
  }
  pthread_mutex_unlock(&nt->mu);
  notices_unref(nt);
  tg__free(r);
}

/* ---- sending ------------------------------------------------------------------ */

static void oseg_destroy(oseg *o) {
  tg__seg_destroy(&o->s, o->track);
  tg__free(o);
}

/* Drop a reference to o on the link's thread: the last one pools it. */
static void oseg_unref(llink *k, oseg *o) {
  if (atomic_fetch_sub(&o->refs, 1) != 1) return;
  tg__segpool_put(&k->pool, &o->s, tg__now());
  tg__free(o);
}

typedef struct back {  /* a part of ours the peer sent back */
  oseg *o;
  notices *nt;
} back;

static void back_free(void *data, void *hint) {
  (void)data;
  back *bk = hint;
  notices *nt = bk->nt;
  oseg *o = bk->o;
  bool destroy = false;
  pthread_mutex_lock(&nt->mu);
  if (atomic_fetch_sub(&o->refs, 1) == 1) {
    if (nt->gone) {
      destroy = true;
    } else { /* pooled by the link's thread */
      o->next = nt->dead;
      nt->dead = o;
    }
  }
  pthread_mutex_unlock(&nt->mu);
  if (destroy) oseg_destroy(o);
  notices_unref(nt);
  tg__free(bk);
}

/* Our segments whose last part went on other threads: to the pool. */
static void take_dead(llink *k) {
  pthread_mutex_lock(&k->nt->mu);
  oseg *o = k->nt->dead;
  k->nt->dead = NULL;
  pthread_mutex_unlock(&k->nt->mu);
  while (o) {
    oseg *next = o->next;
    tg__segpool_put(&k->pool, &o->s, tg__now());
    tg__free(o);
    o = next;
  }
}

/* A segment of ours holding a copy of len bytes at p, registered as busy
 * under a new id; NULL when out of memory or fds. */
static oseg *seg_for(llink *k, const void *p, size_t len) {
  size_t size = tg__seg_class(len);
  oseg *o = tg__calloc(1, sizeof *o);
  if (!o || !size) goto fail;
  if (!tg__segpool_take(&k->pool, size, &o->s) && tg__seg_create(size, k->track, &o->s) != TG_OK)
    goto fail;
  o->track = k->track;
  atomic_init(&o->refs, 1);
  memcpy(o->s.map, p, len);
  o->id = k->next_id++;
  if (!tg__idmap_put(&k->busy, o->id, o)) {
    oseg_destroy(o);
    return NULL;
  }
  k->base.st.seg_copied += len;
  return o;
fail:
  tg__free(o);
  return NULL;
}

/* Whether len bytes at p lie in a segment the peer sent us (still
 * mapped: the caller's part holds it): its id and the offset. */
static bool received(llink *k, const void *p, size_t len, uint64_t *id, uint64_t *off) {
  notices *nt = k->nt;
  bool found = false;
  pthread_mutex_lock(&nt->mu);
  for (size_t i = 0; i < nt->nlive && !found; i++) {
    const struct rseg *r = nt->live[i];
    const uint8_t *m = r->map;
    if ((const uint8_t *)p >= m && (size_t)((const uint8_t *)p - m) <= r->size &&
        len <= r->size - (size_t)((const uint8_t *)p - m)) {
      *id = r->id;
      *off = (uint64_t)((const uint8_t *)p - m);
      found = true;
    }
  }
  pthread_mutex_unlock(&nt->mu);
  return found;
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
  } else if (received(k, p, len, &id, &off)) { /* the peer's own bytes */
    if (!tg__wbuf_reserve(&k->c.out, 1 + 3 * TG__VARINT_MAX)) return TG_ENOMEM;
    tg__wbuf_u8(&k->c.out, P_BACK);
    tg__wbuf_varint(&k->c.out, id);
    tg__wbuf_varint(&k->c.out, off);
    tg__wbuf_varint(&k->c.out, len);
    k->base.st.seg_out += len;
  } else {
    oseg *o = seg_for(k, p, len);
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
  notices *nt = k->nt;
  pthread_mutex_lock(&nt->mu);
  uint64_t *ids = nt->ids;
  size_t n = nt->n;
  nt->ids = NULL;
  nt->n = nt->cap = 0;
  pthread_mutex_unlock(&nt->mu);
  int rc = TG_OK;
  if (n && (tg__pconn_begin(&k->c, F_RELEASE, 0, 0) != TG_OK ||
            !tg__wbuf_reserve(&k->c.out, (n + 1) * TG__VARINT_MAX)))
    rc = TG_ENOMEM; /* the peer keeps them until the link closes */
  if (n && rc == TG_OK) {
    tg__wbuf_varint(&k->c.out, n);
    for (size_t i = 0; i < n; i++) tg__wbuf_varint(&k->c.out, ids[i]);
    tg__pconn_end(&k->c);
  }
  tg__free(ids);
  return rc;
}

static int lflush(tg__link *l) {
  llink *k = (llink *)l;
  if (k->broken) return TG_EIO;
  if (!k->in_msg) send_releases(k);
  take_dead(k);
  size_t before = k->c.sent;
  int rc = tg__pconn_flush(&k->c, false);
  l->st.sock_out += k->c.sent - before;
  if (rc < 0) {
    k->broken = true;
    return TG_EIO;
  }
  double now = tg__now();
  if (k->pool.n && now - k->last_trim > LOCAL_IDLE) {
    tg__segpool_trim(&k->pool, now - LOCAL_IDLE);
    k->last_trim = now;
  }
  return TG_OK;
}

/* ---- receiving ---------------------------------------------------------------- */

/* Segments of ours the peer let go of: back to the pool. */
static int releases(llink *k, const tg__pmsg *m) {
  tg__rbuf r;
  tg__rbuf_init(&r, m->body, m->len);
  uint64_t n = tg__rbuf_count(&r, m->len);
  if (m->nfds || r.bad) return TG_EPROTO;
  for (uint64_t i = 0; i < n; i++) {
    uint64_t id = tg__rbuf_varint(&r);
    oseg *o = r.bad ? NULL : tg__idmap_del(&k->busy, id);
    if (!o) return TG_EPROTO; /* not ours, or released twice */
    oseg_unref(k, o);
  }
  return tg__rbuf_end(&r) ? TG_OK : TG_EPROTO;
}

/* A part of one of our segments, sent back by the peer. */
static int back_part(llink *k, tg__rbuf *r, zmq_msg_t *out) {
  uint64_t id = tg__rbuf_varint(r), off = tg__rbuf_varint(r), len = tg__rbuf_varint(r);
  oseg *o = r->bad ? NULL : tg__idmap_get(&k->busy, id);
  if (!o || len < TG__SEG_MIN || off > o->s.size || len > o->s.size - off) return TG_EPROTO;
  back *bk = tg__malloc(sizeof *bk);
  if (!bk) return TG_ENOMEM;
  *bk = (back){o, k->nt};
  atomic_fetch_add(&o->refs, 1);
  atomic_fetch_add(&k->nt->refs, 1);
  if (zmq_msg_init_data(out, (uint8_t *)o->s.map + off, (size_t)len, back_free, bk) != 0) {
    back_free(NULL, bk);
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
  rseg *g = tg__malloc(sizeof *g);
  if (!g) {
    munmap(map, (size_t)size);
    return TG_ENOMEM;
  }
  *g = (rseg){map, (size_t)size, id, k->nt};
  notices *nt = k->nt;
  pthread_mutex_lock(&nt->mu);
  if (nt->nlive == nt->cap_live) {
    size_t c = nt->cap_live ? nt->cap_live * 2 : 8;
    struct rseg **l = tg__realloc(nt->live, c * sizeof *l);
    if (l) { /* else it cannot be sent back without a copy: fine */
      nt->live = l;
      nt->cap_live = c;
    }
  }
  if (nt->nlive < nt->cap_live) nt->live[nt->nlive++] = g;
  pthread_mutex_unlock(&nt->mu);
  atomic_fetch_add(&k->nt->refs, 1);
  if (zmq_msg_init_data(out, map, (size_t)len, rseg_free, g) != 0) {
    rseg_free(map, g);
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
  pthread_mutex_lock(&k->nt->mu);
  k->nt->gone = true;
  oseg *dead = k->nt->dead;
  k->nt->dead = NULL;
  pthread_mutex_unlock(&k->nt->mu);
  while (dead) {
    oseg *next = dead->next;
    oseg_destroy(dead);
    dead = next;
  }
  if (k->track) tg__fd_untrack(k->c.fd);
  tg__pconn_close(&k->c);
  /* The peer's hold ends with the link; parts of ours sent back may
   * still use a segment: the last of them destroys it. */
  for (size_t i = 0; k->busy.s && i <= k->busy.mask; i++) {
    if (!k->busy.s[i].key) continue;
    oseg *o = k->busy.s[i].val;
    if (atomic_fetch_sub(&o->refs, 1) == 1) oseg_destroy(o);
  }
  tg__idmap_free(&k->busy);
  tg__segpool_free(&k->pool);
  notices_unref(k->nt);
  tg__free(k);
}

static const tg__link_ops lops = {lsend, lrecv, lflush, lpollitem, lclose};

tg__link *tg__link_local(int fd, bool track) {
  llink *k = tg__calloc(1, sizeof *k);
  notices *nt = k ? tg__calloc(1, sizeof *nt) : NULL;
  if (!nt) {
    tg__free(k);
    close(fd);
    return NULL;
  }
  pthread_mutex_init(&nt->mu, NULL);
  atomic_init(&nt->refs, 1);
  k->nt = nt;
  k->base.ops = &lops;
  k->base.streams = false;
  k->base.misalign = 0; /* segments are mapped page-aligned */
  k->track = track;
  k->next_id = 1;
  k->pool.max_bytes = LOCAL_POOL;
  k->pool.tracked = track;
  k->last_trim = tg__now();
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  tg__pconn_init(&k->c, fd);
  return &k->base;
}
