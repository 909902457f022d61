/* lib/remote/shm.c: large values in shared memory between a run and a
 * worker of the same user on one host (see shm.h).
 *
 * Descriptors (the part that stands for a leaf's data, remote/wire.h):
 *   u8 0, varint id, varint fd, varint size, TOKEN bytes: segment id of
 *        the sender's, open as fd in the sender, of size bytes (exactly
 *        tg__seg_class(value bytes + TOKEN)); the data is its first
 *        bytes, the token its last
 *   u8 1, varint id, varint offset: bytes of a segment of the receiver's
 *        that the sender mapped (it received them and sends them on)
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "remote/idmap.h"
#include "remote/seg.h"
#include "remote/shm.h"
#include "remote/stream.h"
#include "sched/sched_internal.h"

enum { D_SEG = 0, D_BACK = 1 };

#define SEG_NAME "/memfd:tgraph" /* what /proc shows for tg__seg_create's */

/* A segment of ours. refs: 1 while the peer may map it (sent, until its
 * SEG_FREE) + each value of ours over it (sent back to us); the last
 * pools it (the connection's thread) or, once the connection is gone,
 * destroys it (any thread). */
typedef struct oseg {
  tg__seg s;
  uint64_t id;
  uint8_t token[TG__SHM_TOKEN];
  _Atomic unsigned refs;
  struct oseg *next; /* shared.dead */
} oseg;

/* What values released on other threads leave for the connection's
 * thread; refcounted by the connection and each value over a segment. */
typedef struct shared {
  pthread_mutex_t mu;    /* guards everything below */
  _Atomic unsigned refs;
  uint64_t *ids;         /* the peer's segments we let go of */
  size_t n, cap;
  struct rseg **live;    /* the peer's segments mapped now */
  size_t nlive, cap_live;
  oseg *dead;            /* ours whose last user went */
  bool gone;             /* the connection ended */
} shared;

typedef struct rseg { /* a mapped segment of the peer's: a value's context */
  void *map;
  size_t size;
  uint64_t id;
  shared *sh;
  struct tg__stream_pool *pool;
} rseg;

typedef struct back { /* a value of ours over our own segment */
  oseg *o;
  shared *sh;
} back;

struct tg__shm {
  pid_t peer;
  bool send_ok, recv_ok;
  shared *sh;
  tg__segpool pool;
  tg__idmap busy;        /* id -> oseg the peer may map */
  uint64_t next_id;
  double last_trim;
  oseg *probe;           /* offered, not yet answered */
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

static void shared_unref(shared *s) {
  if (atomic_fetch_sub(&s->refs, 1) != 1) return;
  pthread_mutex_destroy(&s->mu);
  tg__free(s->ids);
  tg__free(s->live);
  tg__free(s);
}

tg__shm *tg__shm_new(pid_t peer) {
  tg__shm *m = tg__calloc(1, sizeof *m);
  shared *s = m ? tg__calloc(1, sizeof *s) : NULL;
  if (!s) {
    tg__free(m);
    return NULL;
  }
  pthread_mutex_init(&s->mu, NULL);
  atomic_init(&s->refs, 1);
  m->sh = s;
  m->peer = peer;
  m->next_id = 1;
  m->pool.max_bytes = TG__SHM_POOL;
  m->pool.tracked = true;
  m->last_trim = tg__now();
  return m;
}

static void oseg_destroy(oseg *o) {
  tg__seg_destroy(&o->s, true);
  tg__free(o);
}

/* The last reference to o, on the connection's thread: to the pool. */
static void oseg_pool(tg__shm *m, oseg *o) {
  tg__segpool_put(&m->pool, &o->s, tg__now());
  tg__free(o);
}

void tg__shm_free(tg__shm *m) {
  if (!m) return;
  shared *s = m->sh;
  pthread_mutex_lock(&s->mu);
  s->gone = true;
  oseg *dead = s->dead;
  s->dead = NULL;
  pthread_mutex_unlock(&s->mu);
  while (dead) {
    oseg *next = dead->next;
    oseg_destroy(dead);
    dead = next;
  }
  /* The peer's hold ends with the connection; values of ours over a
   * segment keep it until the last goes. */
  for (size_t i = 0; m->busy.s && i <= m->busy.mask; i++) {
    if (!m->busy.s[i].key) continue;
    oseg *o = m->busy.s[i].val;
    pthread_mutex_lock(&s->mu);
    bool last = atomic_fetch_sub(&o->refs, 1) == 1;
    pthread_mutex_unlock(&s->mu);
    if (last) oseg_destroy(o);
  }
  if (m->probe) oseg_destroy(m->probe);
  tg__idmap_free(&m->busy);
  tg__segpool_free(&m->pool);
  shared_unref(s);
  tg__free(m);
}

void tg__shm_set_peer(tg__shm *m, pid_t peer) { m->peer = peer; }

bool tg__shm_can_send(const tg__shm *m) { return m && m->send_ok; }
void tg__shm_set_recv(tg__shm *m, bool ok) { m->recv_ok = ok; }

/* ---- our segments ------------------------------------------------------------ */

/* A segment of ours of at least len bytes and a token, taken from the
 * pool or new; NULL when out of memory or fds. */
static oseg *seg_new(tg__shm *m, size_t len) {
  size_t size = len <= SIZE_MAX - TG__SHM_TOKEN ? tg__seg_class(len + TG__SHM_TOKEN) : 0;
  oseg *o = size ? tg__calloc(1, sizeof *o) : NULL;
  if (!o) return NULL;
  if (!tg__segpool_take(&m->pool, size, &o->s)) {
    if (tg__seg_create(size, true, &o->s) != TG_OK) {
      tg__free(o);
      return NULL;
    }
    /* A new token for a new segment; a pooled one keeps its own. */
    if (getrandom(o->token, sizeof o->token, 0) != (ssize_t)sizeof o->token) {
      tg__seg_destroy(&o->s, true);
      tg__free(o);
      return NULL;
    }
    memcpy((uint8_t *)o->s.map + size - TG__SHM_TOKEN, o->token, TG__SHM_TOKEN);
  } else {
    memcpy(o->token, (uint8_t *)o->s.map + size - TG__SHM_TOKEN, TG__SHM_TOKEN);
  }
  atomic_init(&o->refs, 1);
  o->id = m->next_id++;
  return o;
}

int tg__shm_probe_offer(tg__shm *m, tg__wbuf *h) {
  if (m->probe) oseg_destroy(m->probe);
  m->probe = seg_new(m, 1);
  if (!m->probe) return TG_ENOMEM;
  tg__wbuf_varint(h, (uint64_t)m->probe->s.fd);
  tg__wbuf_varint(h, m->probe->s.size);
  tg__wbuf_bytes(h, m->probe->token, TG__SHM_TOKEN);
  return TG_OK;
}

bool tg__shm_probe_pending(const tg__shm *m) { return m && m->probe; }

void tg__shm_probe_done(tg__shm *m, bool ok) {
  if (m->probe) oseg_destroy(m->probe);
  m->probe = NULL;
  m->send_ok = ok;
}

/* Pool ours that came free on other threads; drop idle ones. */
static void take_dead(tg__shm *m) {
  pthread_mutex_lock(&m->sh->mu);
  oseg *o = m->sh->dead;
  m->sh->dead = NULL;
  pthread_mutex_unlock(&m->sh->mu);
  while (o) {
    oseg *next = o->next;
    oseg_pool(m, o);
    o = next;
  }
  double now = tg__now();
  if (m->pool.n && now - m->last_trim > TG__SHM_IDLE) {
    tg__segpool_trim(&m->pool, now - TG__SHM_IDLE);
    m->last_trim = now;
  }
}

/* Whether len bytes at p lie in a segment of the peer's mapped here. */
static bool received(tg__shm *m, const void *p, size_t len, uint64_t *id, uint64_t *off) {
  shared *s = m->sh;
  bool found = false;
  pthread_mutex_lock(&s->mu);
  for (size_t i = 0; i < s->nlive && !found; i++) {
    const uint8_t *b = s->live[i]->map, *q = p;
    size_t data = s->live[i]->size - TG__SHM_TOKEN;
    if (q >= b && (size_t)(q - b) <= data && len <= data - (size_t)(q - b)) {
      *id = s->live[i]->id;
      *off = (uint64_t)(q - b);
      found = true;
    }
  }
  pthread_mutex_unlock(&s->mu);
  return found;
}

int tg__shm_put(tg__shm *m, const void *p, size_t len, tg__wbuf *d) {
  uint64_t id, off;
  take_dead(m);
  if (received(m, p, len, &id, &off)) { /* the peer's own bytes */
    tg__wbuf_u8(d, D_BACK);
    tg__wbuf_varint(d, id);
    tg__wbuf_varint(d, off);
    return d->oom ? TG_ENOMEM : TG_OK;
  }
  oseg *o = seg_new(m, len);
  if (!o) return TG_ENOMEM;
  if (!tg__idmap_put(&m->busy, o->id, o)) {
    oseg_pool(m, o);
    return TG_ENOMEM;
  }
  memcpy(o->s.map, p, len);
  tg__wbuf_u8(d, D_SEG);
  tg__wbuf_varint(d, o->id);
  tg__wbuf_varint(d, (uint64_t)o->s.fd);
  tg__wbuf_varint(d, o->s.size);
  tg__wbuf_bytes(d, o->token, TG__SHM_TOKEN);
  /* On failure the segment stays busy until the connection ends (the
   * caller drops it). */
  return d->oom ? TG_ENOMEM : TG_OK;
}

/* ---- the peer's segments -------------------------------------------------- */

/* Out of descriptors or memory is ours, not the peer's fault. */
static int open_failed(void) {
  return errno == EMFILE || errno == ENFILE || errno == ENOMEM ? -errno : TG_EFORMAT;
}

/* Open and map segment fd of the peer's, of `size` bytes with `token` at
 * its end, checking that it is one (see shm.h). TG_EFORMAT when not.
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
  char path[64], link[64];
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
  ssize_t n = readlink(path, link, sizeof link - 1);
  if (n < (ssize_t)strlen(SEG_NAME)) goto out;
  link[n] = '\0';
  if (strncmp(link, SEG_NAME, strlen(SEG_NAME)) != 0) goto out;
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

static void rseg_release(void *ctx, void *data) {
  (void)data;
  rseg *g = ctx;
  munmap(g->map, g->size);
  tg__stream_pool_drop(g->pool, g->size);
  shared *s = g->sh;
  pthread_mutex_lock(&s->mu);
  for (size_t i = 0; i < s->nlive; i++)
    if (s->live[i] == g) {
      s->live[i] = s->live[--s->nlive];
      break;
    }
  if (!s->gone) {
    if (s->n == s->cap) {
      size_t c = s->cap ? s->cap * 2 : 16;
      uint64_t *p = tg__realloc(s->ids, c * sizeof *p);
      if (p) { /* else the peer keeps it until the connection ends */
        s->ids = p;
        s->cap = c;
      }
    }
    if (s->n < s->cap) s->ids[s->n++] = g->id;
  }
  pthread_mutex_unlock(&s->mu);
  shared_unref(s);
  tg__free(g);
}

static void back_release(void *ctx, void *data) {
  (void)data;
  back *bk = ctx;
  shared *s = bk->sh;
  oseg *o = bk->o;
  bool destroy = false;
  pthread_mutex_lock(&s->mu);
  if (atomic_fetch_sub(&o->refs, 1) == 1) {
    if (s->gone) {
      destroy = true;
    } else { /* pooled by the connection's thread */
      o->next = s->dead;
      s->dead = o;
    }
  }
  pthread_mutex_unlock(&s->mu);
  if (destroy) oseg_destroy(o);
  shared_unref(s);
  tg__free(bk);
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
    oseg *o = r.bad || !tg__rbuf_end(&r) ? NULL : tg__idmap_get(&m->busy, id);
    size_t data = o ? o->s.size - TG__SHM_TOKEN : 0;
    if (!o || off > data || len > data - off || off % TG_ARRAY_ALIGN)
      return bad(err, "not one of ours");
    back *bk = tg__malloc(sizeof *bk);
    if (!bk) return tg__error_set(err, TG_ENOMEM, "out of memory receiving a value");
    *bk = (back){o, m->sh};
    atomic_fetch_add(&o->refs, 1);
    atomic_fetch_add(&m->sh->refs, 1);
    *p = (uint8_t *)o->s.map + off;
    *release = back_release;
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
  rseg *g = tg__malloc(sizeof *g);
  void *map = NULL;
  rc = g ? open_peer(m->peer, fd, size, token, &map) : TG_ENOMEM;
  if (rc != TG_OK) {
    tg__free(g);
    tg__stream_pool_drop(pool, size);
    if (rc == TG_EFORMAT) return bad(err, "not a segment of the peer's");
    return tg__error_set(err, rc == TG_ENOMEM ? TG_ENOMEM : TG_EIO,
                         "cannot map a value of %llu bytes: %s", (unsigned long long)size,
                         tg_strerror(rc));
  }
  *g = (rseg){map, (size_t)size, id, m->sh, pool};
  shared *s = m->sh;
  pthread_mutex_lock(&s->mu);
  if (s->nlive == s->cap_live) {
    size_t c = s->cap_live ? s->cap_live * 2 : 8;
    rseg **l = tg__realloc(s->live, c * sizeof *l);
    if (l) { /* else it cannot be sent back without a copy: fine */
      s->live = l;
      s->cap_live = c;
    }
  }
  if (s->nlive < s->cap_live) s->live[s->nlive++] = g;
  pthread_mutex_unlock(&s->mu);
  atomic_fetch_add(&s->refs, 1);
  *p = map;
  *release = rseg_release;
  *ctx = g;
  return TG_OK;
}

/* ---- releases -------------------------------------------------------------- */

bool tg__shm_releases(tg__shm *m, tg__wbuf *h) {
  take_dead(m);
  shared *s = m->sh;
  pthread_mutex_lock(&s->mu);
  uint64_t *ids = s->ids;
  size_t n = s->n;
  s->ids = NULL;
  s->n = s->cap = 0;
  pthread_mutex_unlock(&s->mu);
  if (n) tg__wbuf_varint(h, n);
  for (size_t i = 0; i < n; i++) tg__wbuf_varint(h, ids[i]);
  tg__free(ids);
  return n > 0;
}

int tg__shm_released(tg__shm *m, tg__rbuf *r) {
  uint64_t n = tg__rbuf_count(r, r->len);
  for (uint64_t i = 0; i < n && !r->bad; i++) {
    uint64_t id = tg__rbuf_varint(r);
    oseg *o = r->bad || !m ? NULL : tg__idmap_del(&m->busy, id);
    if (!o) return TG_EFORMAT; /* not ours, or released twice */
    pthread_mutex_lock(&m->sh->mu);
    bool last = atomic_fetch_sub(&o->refs, 1) == 1;
    pthread_mutex_unlock(&m->sh->mu);
    if (last) oseg_pool(m, o);
  }
  return r->bad || !tg__rbuf_end(r) ? TG_EFORMAT : TG_OK;
}
