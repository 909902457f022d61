/* lib/wire/segbook.c: the segments one end of a connection has lent to
 * its peer and borrowed from it (see wire/segbook.h). */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include "wire/segbook.h"
#include "wire/stream.h"

/* What values released on other threads leave for the owner; refcounted
 * by the book and each value over a segment. */
typedef struct tg__segbook_shared {
  pthread_mutex_t mu;     /* guards everything below but refs */
  _Atomic unsigned refs;
  uint64_t *ids;          /* the peer's segments let go of */
  size_t n, cap;
  struct borrowed **live; /* the peer's segments mapped now */
  size_t nlive, cap_live;
  tg__lent *dead;         /* ours whose last user went */
  bool gone;              /* the book is finished: nobody to tell */
  bool tracked;           /* segment fds are tracked (constant) */
} shared;

typedef struct borrowed { /* a mapped segment of the peer's */
  void *map;
  size_t size;
  uint64_t id;
  shared *sh;
  struct tg__stream_pool *pool;
} borrowed;

typedef struct held { /* a value of ours over our own segment */
  tg__lent *o;
  shared *sh;
} held;

static void shared_unref(shared *s) {
  if (atomic_fetch_sub(&s->refs, 1) != 1) return;
  pthread_mutex_destroy(&s->mu);
  tg__free(s->ids);
  tg__free(s->live);
  tg__free(s);
}

int tg__segbook_init(tg__segbook *b, size_t tail, bool tracked) {
  *b = (tg__segbook){0};
  shared *s = tg__calloc(1, sizeof *s);
  if (!s) return TG_ENOMEM;
  pthread_mutex_init(&s->mu, NULL);
  atomic_init(&s->refs, 1);
  s->tracked = tracked;
  b->sh = s;
  b->pool.max_bytes = TG__SEGBOOK_POOL;
  b->pool.tracked = tracked;
  b->next_id = 1;
  b->last_trim = tg__now();
  b->tail = tail;
  return TG_OK;
}

static void lent_destroy(bool tracked, tg__lent *o) {
  tg__seg_destroy(&o->s, tracked);
  tg__free(o);
}

/* The last reference to o, on the owner's thread: to the pool. */
static void lent_pool(tg__segbook *b, tg__lent *o) {
  tg__segpool_put(&b->pool, &o->s, tg__now());
  tg__free(o);
}

void tg__segbook_fini(tg__segbook *b) {
  shared *s = b->sh;
  if (!s) return;
  pthread_mutex_lock(&s->mu);
  s->gone = true;
  tg__lent *dead = s->dead;
  s->dead = NULL;
  pthread_mutex_unlock(&s->mu);
  while (dead) {
    tg__lent *next = dead->next;
    lent_destroy(s->tracked, dead);
    dead = next;
  }
  /* Once gone is set, whoever drops the last reference destroys. */
  for (size_t i = 0; b->busy.s && i <= b->busy.mask; i++) {
    if (!b->busy.s[i].key) continue;
    tg__lent *o = b->busy.s[i].val;
    if (atomic_fetch_sub(&o->refs, 1) == 1) lent_destroy(s->tracked, o);
  }
  tg__idmap_free(&b->busy);
  tg__segpool_free(&b->pool);
  shared_unref(s);
  b->sh = NULL;
}

/* ---- ours -------------------------------------------------------------------- */

/* Ours whose last user went on another thread, into the pool. */
static void pool_dead(tg__segbook *b) {
  shared *s = b->sh;
  pthread_mutex_lock(&s->mu);
  tg__lent *o = s->dead;
  s->dead = NULL;
  pthread_mutex_unlock(&s->mu);
  while (o) {
    tg__lent *next = o->next;
    lent_pool(b, o);
    o = next;
  }
}

tg__lent *tg__segbook_take(tg__segbook *b, size_t size) {
  tg__lent *o = size ? tg__calloc(1, sizeof *o) : NULL;
  if (!o) return NULL;
  /* The segment of a value sent before is among the dead when its last
   * user here went after the peer gave it back (a result over it, dropped
   * a moment ago): pooled now, not at the next flush, it is reused. */
  pool_dead(b);
  if (!tg__segpool_take(&b->pool, size, &o->s) &&
      tg__seg_create(size, b->sh->tracked, &o->s) != TG_OK) {
    tg__free(o);
    return NULL;
  }
  atomic_init(&o->refs, 1);
  o->id = b->next_id++;
  return o;
}

bool tg__segbook_lend(tg__segbook *b, tg__lent *o) { return tg__idmap_put(&b->busy, o->id, o); }

void tg__segbook_drop(tg__segbook *b, tg__lent *o) { lent_pool(b, o); }

void tg__segbook_destroy(tg__segbook *b, tg__lent *o) { lent_destroy(b->sh->tracked, o); }

tg__lent *tg__segbook_lent(tg__segbook *b, uint64_t id, uint64_t off, uint64_t len) {
  tg__lent *o = tg__idmap_get(&b->busy, id);
  size_t data = o ? o->s.size - b->tail : 0;
  return o && off <= data && len <= data - off ? o : NULL;
}

void *tg__segbook_hold(tg__segbook *b, tg__lent *o) {
  held *h = tg__malloc(sizeof *h);
  if (!h) return NULL;
  *h = (held){o, b->sh};
  atomic_fetch_add(&o->refs, 1);
  atomic_fetch_add(&b->sh->refs, 1);
  return h;
}

void tg__segbook_unhold(void *ctx, void *data) {
  (void)data;
  held *h = ctx;
  shared *s = h->sh;
  tg__lent *o = h->o;
  bool destroy = false;
  /* Under the lock, so that the owner either finds o among the dead
   * before it finishes or has finished (gone) before we look. */
  pthread_mutex_lock(&s->mu);
  if (atomic_fetch_sub(&o->refs, 1) == 1) {
    if (s->gone) {
      destroy = true;
    } else { /* pooled by the owner */
      o->next = s->dead;
      s->dead = o;
    }
  }
  pthread_mutex_unlock(&s->mu);
  if (destroy) lent_destroy(s->tracked, o);
  shared_unref(s);
  tg__free(h);
}

bool tg__segbook_returned(tg__segbook *b, tg__rbuf *r) {
  uint64_t n = tg__rbuf_count(r, r->len);
  for (uint64_t i = 0; i < n && !r->bad; i++) {
    uint64_t id = tg__rbuf_varint(r);
    tg__lent *o = r->bad ? NULL : tg__idmap_del(&b->busy, id);
    if (!o) return false;
    if (atomic_fetch_sub(&o->refs, 1) == 1) lent_pool(b, o);
  }
  return !r->bad && tg__rbuf_end(r);
}

void tg__segbook_tidy(tg__segbook *b) {
  pool_dead(b);
  double now = tg__now();
  if (b->pool.n && now - b->last_trim > TG__SEGBOOK_IDLE) {
    tg__segpool_trim(&b->pool, now - TG__SEGBOOK_IDLE);
    b->last_trim = now;
  }
}

/* ---- the peer's -------------------------------------------------------------- */

void *tg__segbook_borrow(tg__segbook *b, void *map, size_t size, uint64_t id,
                         struct tg__stream_pool *pool) {
  borrowed *g = tg__malloc(sizeof *g);
  if (!g) return NULL;
  shared *s = b->sh;
  *g = (borrowed){map, size, id, s, pool};
  pthread_mutex_lock(&s->mu);
  if (s->nlive == s->cap_live) {
    size_t c = s->cap_live ? s->cap_live * 2 : 8;
    borrowed **l = tg__realloc(s->live, c * sizeof *l);
    if (l) { /* else it cannot be sent back without a copy: fine */
      s->live = l;
      s->cap_live = c;
    }
  }
  if (s->nlive < s->cap_live) s->live[s->nlive++] = g;
  pthread_mutex_unlock(&s->mu);
  atomic_fetch_add(&s->refs, 1);
  return g;
}

void tg__segbook_unborrow(void *ctx, void *data) {
  (void)data;
  borrowed *g = ctx;
  shared *s = g->sh;
  /* Out of the live list before the memory goes: a new mapping at the same
   * address (mmap reuses freed gaps) must not be taken for this segment
   * by tg__segbook_find and sent back as a reference to it. */
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
  munmap(g->map, g->size);
  tg__stream_pool_drop(g->pool, g->size);
  shared_unref(s);
  tg__free(g);
}

bool tg__segbook_find(tg__segbook *b, const void *p, size_t len, uint64_t *id, uint64_t *off) {
  shared *s = b->sh;
  bool found = false;
  pthread_mutex_lock(&s->mu);
  for (size_t i = 0; i < s->nlive && !found; i++) {
    const uint8_t *m = s->live[i]->map, *q = p;
    size_t data = s->live[i]->size - b->tail;
    if (q >= m && (size_t)(q - m) <= data && len <= data - (size_t)(q - m)) {
      *id = s->live[i]->id;
      *off = (uint64_t)(q - m);
      found = true;
    }
  }
  pthread_mutex_unlock(&s->mu);
  return found;
}

uint64_t *tg__segbook_let_go(tg__segbook *b, size_t *n) {
  shared *s = b->sh;
  pthread_mutex_lock(&s->mu);
  uint64_t *ids = s->ids;
  *n = s->n;
  s->ids = NULL;
  s->n = s->cap = 0;
  pthread_mutex_unlock(&s->mu);
  return ids;
}

void tg__segbook_put_ids(tg__wbuf *w, const uint64_t *ids, size_t n) {
  tg__wbuf_varint(w, n);
  for (size_t i = 0; i < n; i++) tg__wbuf_varint(w, ids[i]);
}
