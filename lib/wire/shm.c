/* lib/wire/shm.c: large values in shared memory between a run and a
 * worker of the same user on one host (see wire/shm.h).
 *
 * Descriptors (the part that stands for a leaf's data, wire/wire.h):
 *   u8 0, varint id, varint fd, varint size, TOKEN bytes: segment id of
 *        the sender's, open as fd in the sender, of size bytes (exactly
 *        tg__seg_class(value bytes + TOKEN)); the data is its first
 *        bytes, the token its last
 *   u8 1, varint id, varint offset: bytes of a segment of the receiver's
 *        that the sender mapped (it received them and sends them on)
 */
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "wire/proto.h"
#include "wire/seg.h"
#include "wire/segbook.h"
#include "wire/shm.h"
#include "wire/stream.h"

enum { D_SEG = 0, D_BACK = 1 };

#define SEG_NAME "/memfd:tgraph" /* what /proc shows for tg__seg_create's */

struct tg__shm {
  pid_t peer;
  bool send_ok, recv_ok;
  tg__segbook book;      /* segments ours lent and the peer's borrowed */
  tg__lent *probe;       /* offered, not yet answered */
  size_t max_lent;       /* segments lent at once, at most */
};

bool tg__shm_allowed(void) {
  const char *v = getenv("TGRAPH_NO_SHM");
  return !v || !*v || strcmp(v, "0") == 0;
}

pid_t tg__shm_peer_pid(zmq_msg_t *part) {
  const char *a = zmq_msg_gets(part, "Peer-Address");
  long uid, gid, pid;
  char end;
  /* ZeroMQ gives a Unix socket peer as localhost:UID:GID:PID. */
  if (!a || sscanf(a, "localhost:%ld:%ld:%ld%c", &uid, &gid, &pid, &end) != 3) return 0;
  return uid == (long)getuid() && pid > 0 ? (pid_t)pid : 0;
}

static rlim_t fd_limit(void) {
  struct rlimit rl;
  return getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
}

/* Segments of ours this process may hold open over all its connections. */
static size_t max_open(void) {
  static _Atomic size_t most; /* read once: the limit rarely moves */
  size_t n = atomic_load_explicit(&most, memory_order_relaxed);
  if (!n) {
    rlim_t nofile = fd_limit();
    n = nofile / 8 > 0 ? (size_t)(nofile / 8) : 1;
    atomic_store_explicit(&most, n, memory_order_relaxed);
  }
  return n;
}

tg__shm *tg__shm_new(pid_t peer) {
  tg__shm *m = tg__calloc(1, sizeof *m);
  if (!m) return NULL;
  if (tg__segbook_init(&m->book, TG__SHM_TOKEN, true) != TG_OK) {
    tg__free(m);
    return NULL;
  }
  m->peer = peer;
  /* A sixteenth of the descriptors this process may open, at most 256. */
  rlim_t nofile = fd_limit();
  m->max_lent = nofile / 16 < TG__SHM_MAX_LENT ? (size_t)(nofile / 16) : TG__SHM_MAX_LENT;
  return m;
}

void tg__shm_free(tg__shm *m) {
  if (!m) return;
  if (m->probe) tg__segbook_destroy(&m->book, m->probe);
  tg__segbook_fini(&m->book);
  tg__free(m);
}

void tg__shm_set_peer(tg__shm *m, pid_t peer) { m->peer = peer; }

bool tg__shm_can_send(const tg__shm *m) { return m && m->send_ok; }
void tg__shm_set_recv(tg__shm *m, bool ok) { m->recv_ok = ok; }

/* ---- our segments ------------------------------------------------------------ */

/* The token at the end of segment o. */
static const uint8_t *token_of(const tg__lent *o) {
  return (const uint8_t *)o->s.map + o->s.size - TG__SHM_TOKEN;
}

/* A segment of ours of at least len bytes and a token, taken from the
 * pool or new; NULL when out of memory or fds. */
static tg__lent *seg_new(tg__shm *m, size_t len) {
  size_t size = len <= SIZE_MAX - TG__SHM_TOKEN ? tg__seg_class(len + TG__SHM_TOKEN) : 0;
  tg__lent *o = tg__segbook_take(&m->book, size);
  /* A new token for a new segment; a pooled one keeps its own. */
  uint8_t *token = o && o->s.fresh ? (uint8_t *)token_of(o) : NULL;
  if (token && getrandom(token, TG__SHM_TOKEN, 0) != (ssize_t)TG__SHM_TOKEN) {
    tg__segbook_destroy(&m->book, o);
    return NULL;
  }
  return o;
}

int tg__shm_probe_offer(tg__shm *m, tg__wbuf *h) {
  if (m->probe) tg__segbook_destroy(&m->book, m->probe);
  m->probe = seg_new(m, 1);
  if (!m->probe) return TG_ENOMEM;
  tg__wbuf_varint(h, (uint64_t)m->probe->s.fd);
  tg__wbuf_varint(h, m->probe->s.size);
  tg__wbuf_bytes(h, token_of(m->probe), TG__SHM_TOKEN);
  return TG_OK;
}

bool tg__shm_probe_pending(const tg__shm *m) { return m && m->probe; }

void tg__shm_probe_done(tg__shm *m, bool ok) {
  if (m->probe) tg__segbook_destroy(&m->book, m->probe);
  m->probe = NULL;
  m->send_ok = ok;
}

int tg__shm_put(tg__shm *m, const void *p, size_t len, tg__wbuf *d) {
  uint64_t id, off;
  tg__segbook_tidy(&m->book);
  /* The peer's own bytes go back as a reference, where it can take one
   * (an array's data is aligned: the receiver refuses any other). */
  if (tg__segbook_find(&m->book, p, len, &id, &off) && off % TG_ARRAY_ALIGN == 0) {
    tg__wbuf_u8(d, D_BACK);
    tg__wbuf_varint(d, id);
    tg__wbuf_varint(d, off);
    return d->oom ? TG_ENOMEM : TG_OK;
  }
  /* Each segment keeps an fd of ours open (lent until the peer lets go,
   * then pooled, or held by a value): past the most a connection may lend
   * (a peer holding many, or never answering) or this process may hold
   * over all its connections (an eighth of its descriptors), values are
   * streamed instead. */
  if (tg__segbook_nlent(&m->book) >= m->max_lent || tg__seg_open() >= max_open())
    return TG_ELIMIT;
  tg__lent *o = seg_new(m, len);
  if (!o) return TG_ENOMEM;
  memcpy(o->s.map, p, len);
  tg__wbuf_u8(d, D_SEG);
  tg__wbuf_varint(d, o->id);
  tg__wbuf_varint(d, (uint64_t)o->s.fd);
  tg__wbuf_varint(d, o->s.size);
  tg__wbuf_bytes(d, token_of(o), TG__SHM_TOKEN);
  if (d->oom || !tg__segbook_lend(&m->book, o)) { /* the caller streams it */
    tg__segbook_drop(&m->book, o);
    return TG_ENOMEM;
  }
  return TG_OK;
}

/* ---- the peer's segments -------------------------------------------------- */

/* Out of descriptors or memory is ours, not the peer's fault. */
static int open_failed(void) {
  return errno == EMFILE || errno == ENFILE || errno == ENOMEM ? -errno : TG_EFORMAT;
}

/* Open and map segment fd of the peer's, of `size` bytes with `token` at
 * its end, checking that it is one (see wire/shm.h). TG_EFORMAT when not.
 *
 * The peer can swap what its fd n is at any moment (dup2), for instance
 * for a file on a FUSE mount of its own, whose stat and open would wait
 * on it forever. So /proc/<pid>/fd/<n> is resolved once, with O_PATH
 * (which never calls into the file's filesystem), and everything after
 * looks at that descriptor of ours, which cannot be swapped: its name
 * and type (from what the kernel already has: no sync), and only then is
 * it opened, through /proc/self. */
static int open_peer(pid_t pid, uint64_t fd, uint64_t size, const uint8_t *token,
                     void **map) {
  char path[64], target[64];
  struct statx sx;
  struct stat st;
  if (pid <= 0 || fd > INT32_MAX || size < TG__SHM_TOKEN || size > SIZE_MAX / 2)
    return TG_EFORMAT;
  snprintf(path, sizeof path, "/proc/%ld/fd/%llu", (long)pid, (unsigned long long)fd);
  int o = open(path, O_PATH | O_CLOEXEC);
  if (o < 0) return open_failed();
  snprintf(path, sizeof path, "/proc/self/fd/%d", o);
  int rc = TG_EFORMAT, f = -1;
  /* What it is, before opening it: a device, a fifo or a file of any
   * filesystem but memfd's is never opened. */
  ssize_t n = readlink(path, target, sizeof target - 1);
  size_t k = strlen(SEG_NAME);
  if (n < (ssize_t)k) goto out;
  target[n] = '\0';
  /* That name exactly ("... (deleted)" follows), not another memfd's
   * that starts with it. */
  if (strncmp(target, SEG_NAME, k) != 0 || (target[k] != '\0' && target[k] != ' ')) goto out;
  if (statx(o, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_TYPE | STATX_NLINK | STATX_INO,
            &sx) != 0 ||
      (sx.stx_mask & (STATX_TYPE | STATX_NLINK | STATX_INO)) !=
          (STATX_TYPE | STATX_NLINK | STATX_INO) ||
      !S_ISREG(sx.stx_mode) || sx.stx_nlink != 0)
    goto out;
  f = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (f < 0) {
    rc = open_failed();
    goto out;
  }
  /* Sealed against shrinking (only a memfd can be): a segment cut short
   * under our mapping would fault here on the next access. Its size is
   * checked after that: sealed, it can no longer shrink. */
  int seals = fcntl(f, F_GET_SEALS);
  if (seals < 0 || !(seals & F_SEAL_SHRINK)) goto out;
  if (fstat(f, &st) != 0 || st.st_ino != sx.stx_ino ||
      major(st.st_dev) != sx.stx_dev_major || minor(st.st_dev) != sx.stx_dev_minor ||
      (uint64_t)st.st_size != size)
    goto out;
  rc = tg__seg_map(f, (size_t)size, true, map);
  if (rc != TG_OK) {
    if (rc == TG_EPROTO) rc = TG_EFORMAT;
    goto out;
  }
  if (memcmp((uint8_t *)*map + size - TG__SHM_TOKEN, token, TG__SHM_TOKEN) != 0) {
    munmap(*map, (size_t)size);
    rc = TG_EFORMAT;
  }
out:
  if (f >= 0) close(f);
  close(o);
  return rc;
}

bool tg__shm_probe_try(tg__shm *m, tg__rbuf *r) {
  uint64_t fd = tg__rbuf_varint(r), size = tg__rbuf_varint(r);
  const uint8_t *token = tg__rbuf_bytes(r, TG__SHM_TOKEN);
  void *map;
  if (r->bad || !token || size > ((size_t)1 << 20) ||
      open_peer(m->peer, fd, size, token, &map) != TG_OK)
    return false;
  munmap(map, (size_t)size);
  return true;
}

static int bad(tg_error *err, const char *what) {
  return tg__error_set(err, TG_EFORMAT, "bad shared-memory segment: %s", what);
}

int tg__shm_get(tg__shm *m, const void *desc, size_t dlen, size_t len, uint64_t limit,
                struct tg__stream_pool *pool, void **p, void (**release)(void *, void *),
                void **ctx, tg_error *err) {
  tg__rbuf r;
  tg__rbuf_init(&r, desc, dlen);
  uint8_t kind = tg__rbuf_u8(&r);
  uint64_t id = tg__rbuf_varint(&r);
  if (!m || r.bad) return bad(err, "no segments on this connection");
  if (kind == D_BACK) {
    uint64_t off = tg__rbuf_varint(&r);
    tg__lent *o = r.bad || !tg__rbuf_end(&r) ? NULL : tg__segbook_lent(&m->book, id, off, len);
    if (!o || off % TG_ARRAY_ALIGN) return bad(err, "not one of ours");
    void *bk = tg__segbook_hold(&m->book, o);
    if (!bk) return tg__error_set(err, TG_ENOMEM, "out of memory receiving a value");
    *p = (uint8_t *)o->s.map + off;
    *release = tg__segbook_unhold;
    *ctx = bk;
    return TG_OK;
  }
  uint64_t fd = tg__rbuf_varint(&r), size = tg__rbuf_varint(&r);
  const uint8_t *token = tg__rbuf_bytes(&r, TG__SHM_TOKEN);
  if (kind != D_SEG || r.bad || !token || !tg__rbuf_end(&r) || !m->recv_ok)
    return bad(err, "malformed descriptor");
  /* The size a sender makes for len bytes, no other: a huge sparse file
   * would cost nothing to announce. */
  if (len > SIZE_MAX - TG__SHM_TOKEN || size != tg__seg_class(len + TG__SHM_TOKEN))
    return bad(err, "wrong size for the value");
  if (len > limit) /* as a streamed value's; the pool counts the segment */
    return tg__error_set(err, TG_ELIMIT, "a value of %zu bytes in shared memory is over "
                         "the limit of %llu bytes (--max-message)", len,
                         (unsigned long long)limit);
  int rc = tg__stream_pool_hold(pool, size, err);
  if (rc != TG_OK) return rc;
  void *map = NULL, *g = NULL;
  rc = open_peer(m->peer, fd, size, token, &map);
  if (rc == TG_OK && !(g = tg__segbook_borrow(&m->book, map, (size_t)size, id, pool))) {
    munmap(map, (size_t)size);
    rc = TG_ENOMEM;
  }
  if (rc != TG_OK) {
    tg__stream_pool_drop(pool, size);
    if (rc == TG_EFORMAT) return bad(err, "not a segment of the peer's");
    return tg__error_set(err, rc == TG_ENOMEM ? TG_ENOMEM : TG_EIO,
                         "cannot map a value of %llu bytes: %s", (unsigned long long)size,
                         tg_strerror(rc));
  }
  *p = map;
  *release = tg__segbook_unborrow;
  *ctx = g;
  return TG_OK;
}

/* ---- releases -------------------------------------------------------------- */

bool tg__shm_releases(tg__shm *m, tg__wbuf *h) {
  tg__segbook_tidy(&m->book);
  size_t n;
  uint64_t *ids = tg__segbook_let_go(&m->book, &n);
  if (n) {
    tg__wbuf_u8(h, TG__M_SEG_FREE);
    tg__segbook_put_ids(h, ids, n);
  }
  tg__free(ids);
  return n > 0;
}

int tg__shm_released(tg__shm *m, tg__rbuf *r) {
  if (m) return tg__segbook_returned(&m->book, r) ? TG_OK : TG_EFORMAT;
  uint64_t n = tg__rbuf_count(r, r->len); /* no segments here: none can be ours */
  return n || r->bad || !tg__rbuf_end(r) ? TG_EFORMAT : TG_OK;
}
