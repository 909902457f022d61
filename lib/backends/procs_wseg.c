/* lib/backends/procs_wseg.c: a worker's segments: the ones it created
 * (large arrays are allocated in shared memory from the start, so results
 * cross with no copy at all) and the ones the parent passed it.
 *
 * The table keeps a region reference on every segment the parent knows we
 * have: received ones until the parent says "forget", our own ones from
 * their first sending until the parent says "release" (after which, once
 * no value uses it, the segment is reused for a new array under a new id).
 * Own segments never sent are reused as soon as their array goes.
 *
 * Thread safety: the worker's main thread only (the hook is thread-local). */
#include <unistd.h>

#include "procs_internal.h"

#define POOL_MAX ((size_t)256 << 20) /* free segment bytes a worker keeps */

typedef struct wseg {
  uint64_t id;
  tg__seg seg;        /* own: fd kept to pass it; received: fd closed */
  bool own;
  bool parent_holds;  /* own: the parent has the fd */
  bool in_table;
  tg__region *region; /* the table's reference while in_table */
  struct wseg *hnext;
  tg__wsegs *ws;
} wseg;

struct tg__wsegs {
  wseg **tab;
  size_t cap, n;
  tg__segpool pool;
  uint32_t spawn, next;
  tg__pconn *conn;
};

static _Thread_local tg__wsegs *tl_ws;

static void wseg_release(void *ctx, void *data);

/* ---- the table ------------------------------------------------------------------- */

static size_t slot_of(const tg__wsegs *ws, uint64_t id) {
  return (size_t)((id * UINT64_C(0x9E3779B97F4A7C15)) >> 20) & (ws->cap - 1);
}

static wseg *find(const tg__wsegs *ws, uint64_t id) {
  for (wseg *s = ws->tab[slot_of(ws, id)]; s; s = s->hnext)
    if (s->id == id) return s;
  return NULL;
}

static void insert(tg__wsegs *ws, wseg *s, tg__region *r) {
  if (ws->n >= ws->cap) { /* grow; on failure chains just get longer */
    wseg **tab = tg__calloc(ws->cap * 2, sizeof *tab);
    if (tab) {
      wseg **old = ws->tab;
      size_t oldcap = ws->cap;
      ws->tab = tab;
      ws->cap *= 2;
      for (size_t i = 0; i < oldcap; i++)
        for (wseg *x = old[i], *nx; x; x = nx) {
          nx = x->hnext;
          size_t k = slot_of(ws, x->id);
          x->hnext = tab[k];
          tab[k] = x;
        }
      tg__free(old);
    }
  }
  size_t k = slot_of(ws, s->id);
  s->hnext = ws->tab[k];
  ws->tab[k] = s;
  ws->n++;
  s->in_table = true;
  s->region = r;
}

/* Take s out of the table and drop the table's reference (may free s). */
static void remove_seg(tg__wsegs *ws, wseg *s) {
  for (wseg **pp = &ws->tab[slot_of(ws, s->id)]; *pp; pp = &(*pp)->hnext)
    if (*pp == s) {
      *pp = s->hnext;
      ws->n--;
      break;
    }
  tg__region *r = s->region;
  s->in_table = false;
  s->region = NULL;
  tg__region_unref(r);
}

static void wseg_release(void *ctx, void *data) {
  (void)data;
  wseg *s = ctx;
  if (s->own) tg__segpool_put(&s->ws->pool, &s->seg, tg__now());
  else tg__seg_destroy(&s->seg, false);
  tg__free(s);
}

/* ---- own segments ------------------------------------------------------------------- */

/* A new own segment for nbytes with a region (one reference) over it. */
static wseg *own_new(tg__wsegs *ws, size_t nbytes, tg__region **region) {
  size_t size = tg__seg_class(nbytes);
  wseg *s = size ? tg__calloc(1, sizeof *s) : NULL;
  if (!s) return NULL;
  if (!tg__segpool_take(&ws->pool, size, &s->seg) &&
      tg__seg_create(size, false, &s->seg) != TG_OK) {
    tg__free(s);
    return NULL;
  }
  s->id = ((uint64_t)ws->spawn << 32) | ws->next++;
  s->own = true;
  s->ws = ws;
  *region = tg__region_new(s->seg.map, wseg_release, s);
  return *region ? s : NULL; /* a failed region released s already */
}

/* tg__array_alloc_hook of a worker. */
static void *alloc_hook(size_t nbytes, bool zero, tg__region **region) {
  tg__wsegs *ws = tl_ws;
  if (!ws || nbytes < TG__PROCS_SHM_MIN) return NULL;
  wseg *s = own_new(ws, nbytes, region);
  if (!s) return NULL;
  if (zero && !s->seg.fresh) memset(s->seg.map, 0, nbytes);
  s->seg.fresh = false;
  return s->seg.map;
}

tg__wsegs *tg__wsegs_new(uint32_t spawn, tg__pconn *conn) {
  tg__wsegs *ws = tg__calloc(1, sizeof *ws);
  if (!ws) return NULL;
  ws->cap = 64;
  ws->tab = tg__calloc(ws->cap, sizeof *ws->tab);
  if (!ws->tab) {
    tg__free(ws);
    return NULL;
  }
  ws->pool.max_bytes = POOL_MAX;
  ws->spawn = spawn;
  ws->conn = conn;
  tl_ws = ws;
  tg__array_alloc_hook = alloc_hook;
  return ws;
}

/* ---- the codec's callbacks ------------------------------------------------------------ */

static tg__region *region_of(const tg_value *v, const void **data) {
  if (v->type == TG_NDARRAY) {
    *data = ((const tg__array *)v)->data;
    return ((const tg__array *)v)->region;
  }
  *data = ((const tg__blob *)v)->data;
  return ((const tg__blob *)v)->region;
}

int tg__wsegs_enc(void *ctx, const tg_value *v, tg__pref *ref) {
  tg__wsegs *ws = ctx;
  const void *data;
  tg__region *r = region_of(v, &data);
  size_t nbytes = v->type == TG_NDARRAY ? ((const tg__array *)v)->nbytes
                                        : ((const tg__blob *)v)->len;
  wseg *s = r && r->release == wseg_release ? r->ctx : NULL;
  if (s && !s->own && !s->in_table) s = NULL; /* the parent may have let go */
  if (!s) { /* not in shared memory (or stale): copy it into a new segment */
    tg__region *nr;
    if (!(s = own_new(ws, nbytes, &nr))) return 1;
    memcpy(s->seg.map, data, nbytes);
    s->seg.fresh = false;
    data = s->seg.map;
    insert(ws, s, nr); /* the table owns the only reference */
  } else if (s->own && !s->in_table) {
    tg__region_ref(r);
    insert(ws, s, r);
  }
  ref->has_fd = s->own && !s->parent_holds;
  if (ref->has_fd) {
    if (tg__pconn_add_fd(ws->conn, s->seg.fd) != TG_OK) return TG_ENOMEM;
    s->parent_holds = true;
  }
  ref->id = s->id;
  ref->size = s->seg.size;
  ref->off = (uint64_t)((const char *)data - (const char *)s->seg.map);
  return TG_OK;
}

int tg__wsegs_dec(void *ctx, const tg__pref *ref, tg_value **out) {
  tg__wsegs *ws = ctx;
  int fd = ref->has_fd ? tg__pconn_take_fd(ws->conn) : -1;
  if (ref->has_fd && fd < 0) return TG_EPROTO;
  wseg *s = find(ws, ref->id);
  if (s) {
    if (fd >= 0) close(fd); /* passed again: we have it */
  } else {
    if (fd < 0) return TG_EPROTO;
    s = tg__calloc(1, sizeof *s);
    if (!s) {
      close(fd);
      return TG_ENOMEM;
    }
    s->id = ref->id;
    s->ws = ws;
    s->seg.size = (size_t)ref->size;
    int rc = tg__seg_map(fd, s->seg.size, false, &s->seg.map);
    close(fd);
    s->seg.fd = -1;
    if (rc != TG_OK) {
      tg__free(s);
      return rc;
    }
    tg__region *r = tg__region_new(s->seg.map, wseg_release, s);
    if (!r) return TG_ENOMEM; /* released s */
    insert(ws, s, r);
  }
  if (ref->off > s->seg.size || ref->nbytes > s->seg.size - ref->off) return TG_EPROTO;
  char *data = (char *)s->seg.map + ref->off;
  if (ref->type == TG_NDARRAY)
    *out = tg__array_borrow(ref->dtype, ref->ndim, ref->shape, data, s->region);
  else
    *out = tg__blob_borrow(TG_BYTES, data, ref->nbytes, s->region);
  return *out ? TG_OK : TG_ENOMEM;
}

/* ---- the parent's instructions --------------------------------------------------------- */

void tg__wsegs_forget(tg__wsegs *ws, uint64_t id) {
  wseg *s = find(ws, id);
  if (!s) return;
  if (s->own) s->parent_holds = false; /* kept until released */
  else remove_seg(ws, s);
}

void tg__wsegs_release(tg__wsegs *ws, uint64_t id) {
  wseg *s = find(ws, id);
  if (!s || !s->own) return;
  s->parent_holds = false;
  remove_seg(ws, s); /* reused once no value of ours uses it */
}

bool tg__wsegs_trim(tg__wsegs *ws, double before) {
  return tg__segpool_trim(&ws->pool, before) > 0;
}
