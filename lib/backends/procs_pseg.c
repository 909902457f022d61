/* lib/backends/procs_pseg.c: the parent's table of segments shared with
 * workers: which worker has each mapped, parent values borrowing them,
 * copies of user arrays made to send them, and the hand-over to the IO
 * thread when the last parent value using a segment goes.
 *
 * A parent value borrowing a segment holds a region whose release counts
 * the segment's live regions down (any thread); at zero the segment is
 * queued on the link for the IO thread, which tells its holders to forget
 * it. Only the IO thread creates regions, so a count seen at zero there
 * stays zero. The count changes under link->mu so that the backend's end
 * (orphaning what values still use) and a release never race. */
#include <errno.h>
#include <stdint.h>
#include <unistd.h>

#include "procs_internal.h"

#define POOL_MAX ((size_t)512 << 20) /* free segment bytes the parent keeps */
#define COPIES_MAX 32                 /* copies of user arrays kept for reuse */
#define COPIES_BYTES ((size_t)1 << 30)

static void pseg_release(void *ctx, void *data);

/* ---- the link ------------------------------------------------------------------- */

static void link_unref_locked(tg__plink *l) {
  bool last = --l->refs == 0;
  pthread_mutex_unlock(&l->mu);
  if (last) {
    pthread_mutex_destroy(&l->mu);
    tg__free(l);
  }
}

static void wake(tg__plink *l) {
  uint64_t one = 1;
  if (l->alive && l->wake_fd >= 0) (void)!write(l->wake_fd, &one, sizeof one);
}

/* ---- the table ------------------------------------------------------------------- */

static size_t slot_of(const tg__psegs *ps, uint64_t id) {
  return (size_t)((id * UINT64_C(0x9E3779B97F4A7C15)) >> 20) & (ps->cap - 1);
}

int tg__psegs_init(tg__psegs *ps, int wake_fd, tg__pstats *stats) {
  memset(ps, 0, sizeof *ps);
  ps->cap = 64;
  ps->tab = tg__calloc(ps->cap, sizeof *ps->tab);
  ps->link = tg__calloc(1, sizeof *ps->link);
  if (!ps->tab || !ps->link) {
    tg__free(ps->tab);
    tg__free(ps->link);
    return TG_ENOMEM;
  }
  pthread_mutex_init(&ps->link->mu, NULL);
  ps->link->refs = 1;
  ps->link->alive = true;
  ps->link->wake_fd = wake_fd;
  ps->pool.max_bytes = POOL_MAX;
  ps->pool.tracked = true;
  ps->next_id = 1;
  ps->stats = stats;
  return TG_OK;
}

tg__pseg *tg__psegs_find(const tg__psegs *ps, uint64_t id) {
  for (tg__pseg *s = ps->tab[slot_of(ps, id)]; s; s = s->hnext)
    if (s->id == id) return s;
  return NULL;
}

static void grow(tg__psegs *ps) {
  size_t cap = ps->cap * 2;
  tg__pseg **tab = tg__calloc(cap, sizeof *tab);
  if (!tab) return; /* longer chains, still correct */
  tg__pseg **old = ps->tab;
  size_t oldcap = ps->cap;
  ps->tab = tab;
  ps->cap = cap;
  for (size_t i = 0; i < oldcap; i++)
    for (tg__pseg *s = old[i], *nx; s; s = nx) {
      nx = s->hnext;
      size_t k = slot_of(ps, s->id);
      s->hnext = tab[k];
      tab[k] = s;
    }
  tg__free(old);
}

static void insert(tg__psegs *ps, tg__pseg *s) {
  if (ps->n >= ps->cap) grow(ps);
  size_t k = slot_of(ps, s->id);
  s->hnext = ps->tab[k];
  ps->tab[k] = s;
  ps->n++;
}

static void unlink_seg(tg__psegs *ps, tg__pseg *s) {
  for (tg__pseg **pp = &ps->tab[slot_of(ps, s->id)]; *pp; pp = &(*pp)->hnext)
    if (*pp == s) {
      *pp = s->hnext;
      ps->n--;
      return;
    }
}

static tg__pseg *pseg_new(tg__psegs *ps, uint64_t id, const tg__seg *seg,
                          uint32_t creator, int creator_slot) {
  tg__pseg *s = tg__calloc(1, sizeof *s);
  if (!s) return NULL;
  s->id = id;
  s->seg = *seg;
  s->creator = creator;
  s->creator_slot = creator_slot;
  s->link = ps->link;
  insert(ps, s);
  return s;
}

void tg__psegs_each(tg__psegs *ps, void (*fn)(void *ctx, tg__pseg *s), void *ctx) {
  for (size_t i = 0; i < ps->cap; i++)
    for (tg__pseg *s = ps->tab[i], *nx; s; s = nx) {
      nx = s->hnext;
      fn(ctx, s);
    }
}

/* ---- parent values over segments ------------------------------------------------ */

tg__pseg *tg__psegs_of(const tg_value *v) {
  if (!v || tg__is_imm(v)) return NULL;
  tg__region *r = NULL;
  if (v->type == TG_NDARRAY) r = ((const tg__array *)v)->region;
  else if (v->type == TG_BYTES) r = ((const tg__blob *)v)->region;
  return r && r->release == pseg_release ? r->ctx : NULL;
}

static void pseg_release(void *ctx, void *data) {
  (void)data;
  tg__pseg *s = ctx;
  tg__plink *l = s->link;
  pthread_mutex_lock(&l->mu);
  if (atomic_fetch_sub_explicit(&s->nlive, 1, memory_order_acq_rel) != 1) {
    pthread_mutex_unlock(&l->mu);
    return;
  }
  if (s->orphan) { /* the backend is gone: this was the last user */
    tg__seg_destroy(&s->seg, true);
    tg__free(s);
    link_unref_locked(l);
    return;
  }
  if (!s->queued) {
    s->queued = true;
    s->qnext = l->notices;
    l->notices = s;
    wake(l);
  }
  pthread_mutex_unlock(&l->mu);
}

/* A parent value over `nbytes` at `off` in s. */
static int value_over(tg__pseg *s, const tg__pref *ref, tg_value **out) {
  atomic_fetch_add_explicit(&s->nlive, 1, memory_order_acq_rel);
  tg__region *rg = tg__region_new(s->seg.map, pseg_release, s);
  if (!rg) return TG_ENOMEM; /* the release already counted it down */
  char *data = (char *)s->seg.map + ref->off;
  if (ref->type == TG_NDARRAY)
    *out = tg__array_borrow(ref->dtype, ref->ndim, ref->shape, data, rg);
  else
    *out = tg__blob_borrow(TG_BYTES, data, ref->nbytes, rg);
  tg__region_unref(rg); /* the value holds it, or nobody */
  return *out ? TG_OK : TG_ENOMEM;
}

int tg__psegs_value(tg__psegs *ps, const tg__pref *ref, int fd, int slot,
                    uint32_t spawn, tg_value **out) {
  tg__pseg *s = tg__psegs_find(ps, ref->id);
  if (s) {
    if (fd >= 0) close(fd); /* passed again: we have it */
  } else {
    if (fd < 0) return TG_EPROTO; /* a segment we never saw, without fd */
    tg__seg seg = {.fd = fd, .size = (size_t)ref->size};
    int rc = tg__seg_map(fd, seg.size, false, &seg.map);
    if (rc != TG_OK) {
      close(fd);
      return rc;
    }
    tg__fd_track(fd);
    uint32_t creator = (uint32_t)(ref->id >> 32);
    s = pseg_new(ps, ref->id, &seg, creator, creator == spawn ? slot : -1);
    if (!s) {
      tg__seg_destroy(&seg, true);
      return TG_ENOMEM;
    }
    if (creator == spawn && slot < 64) s->holders |= UINT64_C(1) << slot;
    ps->stats->fds_passed++;
  }
  if (ref->off > s->seg.size || ref->nbytes > s->seg.size - ref->off) return TG_EPROTO;
  ps->stats->shm_passed += ref->nbytes;
  return value_over(s, ref, out);
}

/* ---- sending: segments for values ------------------------------------------------ */

static void notice_locked(tg__plink *l, tg__pseg *s);

void tg__psegs_unhold(tg__psegs *ps, tg__pseg *s) {
  if (--s->holds || atomic_load(&s->nlive)) return;
  pthread_mutex_lock(&ps->link->mu);
  notice_locked(ps->link, s);
  pthread_mutex_unlock(&ps->link->mu);
}

/* Forget the oldest copy (in-flight batches keep their own holds). */
static void evict_copy(tg__psegs *ps) {
  tg__pcopy c = ps->copies[0];
  memmove(ps->copies, ps->copies + 1, --ps->ncopies * sizeof *ps->copies);
  ps->copies_bytes -= c.seg->seg.size;
  tg_value_unref(c.src);
  tg__psegs_unhold(ps, c.seg);
}

/* The segment holding a copy of v, made now if there is none. */
static tg__pseg *copy_of(tg__psegs *ps, const tg_value *v, const void *data,
                         size_t nbytes) {
  for (size_t i = 0; i < ps->ncopies; i++)
    if (ps->copies[i].src == v) return ps->copies[i].seg;
  while (ps->ncopies && (ps->ncopies >= COPIES_MAX || ps->copies_bytes + nbytes > COPIES_BYTES))
    evict_copy(ps);
  if (ps->ncopies == ps->copies_cap) {
    size_t c = ps->copies_cap ? ps->copies_cap * 2 : 8;
    tg__pcopy *nc = tg__realloc(ps->copies, c * sizeof *nc);
    if (!nc) return NULL;
    ps->copies = nc;
    ps->copies_cap = c;
  }
  size_t size = tg__seg_class(nbytes);
  tg__seg seg;
  if (!size || (!tg__segpool_take(&ps->pool, size, &seg) &&
                tg__seg_create(size, true, &seg) != TG_OK))
    return NULL;
  memcpy(seg.map, data, nbytes);
  tg__pseg *s = pseg_new(ps, ps->next_id++, &seg, 0, -1);
  if (!s) {
    tg__segpool_put(&ps->pool, &seg, tg__now());
    return NULL;
  }
  s->holds = 1; /* the cache's */
  ps->copies[ps->ncopies++] = (tg__pcopy){tg_value_ref((tg_value *)v), s};
  ps->copies_bytes += s->seg.size;
  ps->stats->shm_copied += nbytes;
  return s;
}

int tg__psegs_ref(tg__psegs *ps, const tg_value *v, int slot, tg__pref *ref,
                  tg__pseg **seg, bool *held) {
  const void *data;
  size_t nbytes;
  if (v->type == TG_NDARRAY) {
    data = ((const tg__array *)v)->data;
    nbytes = ((const tg__array *)v)->nbytes;
  } else {
    data = ((const tg__blob *)v)->data;
    nbytes = ((const tg__blob *)v)->len;
  }
  tg__pseg *s = tg__psegs_of(v);
  *held = !s;
  if (!s) {
    if (!(s = copy_of(ps, v, data, nbytes))) return 1; /* inline */
    data = s->seg.map; /* the copy is what goes */
    s->holds++;        /* the caller's */
  }
  ref->id = s->id;
  ref->size = s->seg.size;
  ref->off = (uint64_t)((const char *)data - (const char *)s->seg.map);
  uint64_t bit = slot < 64 ? UINT64_C(1) << slot : 0;
  ref->has_fd = !(s->holders & bit);
  s->holders |= bit;
  if (ref->has_fd) ps->stats->fds_passed++;
  ps->stats->shm_passed += nbytes;
  *seg = s;
  return TG_OK;
}

/* ---- giving segments up ------------------------------------------------------------ */

static void notice_locked(tg__plink *l, tg__pseg *s) {
  if (s->queued) return;
  s->queued = true;
  s->qnext = l->notices;
  l->notices = s;
}

void tg__psegs_drop_copies(tg__psegs *ps) {
  while (ps->ncopies) evict_copy(ps);
}

size_t tg__psegs_notices(tg__psegs *ps, tg__pseg ***out) {
  tg__plink *l = ps->link;
  pthread_mutex_lock(&l->mu);
  size_t n = 0;
  for (tg__pseg *s = l->notices; s; s = s->qnext) n++;
  if (n > ps->nbuf_cap) {
    tg__pseg **b = tg__realloc(ps->nbuf, n * sizeof *b);
    if (b) {
      ps->nbuf = b;
      ps->nbuf_cap = n;
    } else {
      n = ps->nbuf_cap; /* the rest stay queued for the next call */
    }
  }
  for (size_t i = 0; i < n; i++) {
    tg__pseg *s = l->notices;
    l->notices = s->qnext;
    s->queued = false;
    ps->nbuf[i] = s;
  }
  pthread_mutex_unlock(&l->mu);
  *out = ps->nbuf;
  return n;
}

bool tg__psegs_retire(tg__psegs *ps, tg__pseg *s) {
  pthread_mutex_lock(&ps->link->mu);
  bool queued = s->queued;
  pthread_mutex_unlock(&ps->link->mu);
  if (queued) return false; /* released again meanwhile: that notice decides */
  unlink_seg(ps, s);
  if (s->creator == 0) tg__segpool_put(&ps->pool, &s->seg, tg__now());
  else tg__seg_destroy(&s->seg, true);
  tg__free(s);
  return true;
}

static void clear_slot(void *ctx, tg__pseg *s) {
  int slot = *(const int *)ctx;
  if (slot < 64) s->holders &= ~(UINT64_C(1) << slot);
  if (s->creator_slot == slot) s->creator_slot = -1;
}

void tg__psegs_forget_slot(tg__psegs *ps, int slot) {
  tg__psegs_each(ps, clear_slot, &slot);
}

void tg__psegs_free(tg__psegs *ps) {
  if (!ps->link) return;
  tg__psegs_drop_copies(ps);
  tg__plink *l = ps->link;
  pthread_mutex_lock(&l->mu);
  l->alive = false;
  l->notices = NULL;
  for (size_t i = 0; i < ps->cap; i++)
    for (tg__pseg *s = ps->tab[i], *nx; s; s = nx) {
      nx = s->hnext;
      s->queued = false;
      if (atomic_load(&s->nlive) == 0) {
        tg__seg_destroy(&s->seg, true);
        tg__free(s);
      } else { /* parent values still use it: the last one frees it */
        s->orphan = true;
        l->refs++;
      }
    }
  link_unref_locked(l);
  tg__segpool_free(&ps->pool);
  tg__free(ps->tab);
  tg__free(ps->copies);
  tg__free(ps->nbuf);
  memset(ps, 0, sizeof *ps);
}
