/* lib/wire/wire.c: values as ZeroMQ message parts (see wire/wire.h): the
 * skeleton walk that lifts large leaves out of a value, zero-copy sends,
 * and the decoder that puts received leaves back in place. */
#include <stddef.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "wire/buf.h"
#include "wire/shm.h"
#include "wire/stream.h"
#include "wire/wire.h"
#include "util/tsan.h"
#include "serial/format.h"
#include "tgraph/serial.h"
#include "value/value_internal.h"

/* ---- sending ---------------------------------------------------------- */

typedef struct leaf {
  const tg_value *v;
  size_t path_off, depth; /* path[path_off .. path_off + depth) */
  size_t pad;             /* bytes sent before the data (see wire/wire.h) */
  uint8_t kind;           /* how its data goes: L_PART, L_STREAMED (ahead
                             as BULK messages, number seq), L_SHM (a
                             segment descriptor as its part, desc) */
  uint64_t seq;
  size_t desc_off, desc_len; /* in walker.descs */
} leaf;

enum { L_PART = 0, L_STREAMED = 1, L_SHM = 2 };

typedef struct walker {
  leaf *leaves;
  size_t n, cap;
  size_t *paths;
  size_t npaths, cap_paths;
  size_t depth;
  tg__wbuf descs; /* segment descriptors (wire/shm.h) */
  int err;
  size_t stack[TG_DEPTH_MAX + 1]; /* last: not cleared (written before read) */
} walker;

static bool is_large(const tg_value *v) {
  if (tg__is_imm(v)) return false;
  if (v->type == TG_NDARRAY) return ((const tg__array *)v)->nbytes >= TG__WIRE_PART_MIN;
  if (v->type == TG_BYTES) return ((const tg__blob *)v)->len >= TG__WIRE_PART_MIN;
  return false;
}

static void add_leaf(walker *w, const tg_value *v) {
  if (w->n == w->cap) {
    size_t c = w->cap ? w->cap * 2 : 8;
    leaf *l = tg__realloc(w->leaves, c * sizeof *l);
    if (!l) {
      w->err = TG_ENOMEM;
      return;
    }
    w->leaves = l;
    w->cap = c;
  }
  if (w->cap_paths - w->npaths < w->depth) {
    size_t c = w->cap_paths ? w->cap_paths * 2 : 64;
    while (c - w->npaths < w->depth) c *= 2;
    size_t *p = tg__realloc(w->paths, c * sizeof *p);
    if (!p) {
      w->err = TG_ENOMEM;
      return;
    }
    w->paths = p;
    w->cap_paths = c;
  }
  if (w->depth) memcpy(w->paths + w->npaths, w->stack, w->depth * sizeof *w->paths);
  w->leaves[w->n++] = (leaf){v, w->npaths, w->depth, 0, L_PART, 0, 0, 0};
  w->npaths += w->depth;
}

static tg_value *strip(walker *w, tg_value *v);

/* A copy of list v with item i onwards replaced by their stripped forms;
 * items before `from` are unchanged (first_new is item `from`'s). */
static tg_value *strip_list(walker *w, tg_value *v, size_t from,
                            tg_value *first_new) {
  size_t n = tg_list_len(v);
  tg_value *const *it = tg_list_items(v);
  tg_value *out = tg_list_alloc(n);
  if (!out) {
    tg_value_unref(first_new);
    w->err = TG_ENOMEM;
    return NULL;
  }
  for (size_t i = 0; i < from; i++) tg_list_init_item(out, i, tg_value_ref(it[i]));
  tg_list_init_item(out, from, first_new);
  for (size_t i = from + 1; i < n && !w->err; i++) {
    w->stack[w->depth++] = i;
    tg_value *x = strip(w, it[i]);
    w->depth--;
    if (x) tg_list_init_item(out, i, x);
  }
  if (w->err) {
    tg_value_unref(out);
    return NULL;
  }
  return out;
}

static tg_value *strip_map(walker *w, tg_value *v, size_t from,
                           tg_value *first_new) {
  size_t n = tg_map_len(v), kl;
  tg_value *out = tg_map_new(n);
  if (!out) {
    tg_value_unref(first_new);
    w->err = TG_ENOMEM;
    return NULL;
  }
  for (size_t i = 0; i < n && !w->err; i++) {
    const char *k = tg_map_key_at(v, i, &kl);
    tg_value *x;
    if (i < from) {
      x = tg_value_ref(tg_map_value_at(v, i));
    } else if (i == from) {
      x = first_new;
    } else {
      w->stack[w->depth++] = i;
      x = strip(w, tg_map_value_at(v, i));
      w->depth--;
    }
    if (x && tg_map_put(out, k, kl, x) != TG_OK) w->err = TG_ENOMEM;
  }
  if (w->err) {
    tg_value_unref(out);
    return NULL;
  }
  return out;
}

/* v itself (a new reference) when it holds no large leaf, else its
 * skeleton; NULL on error (w->err). */
static tg_value *strip(walker *w, tg_value *v) {
  if (is_large(v)) {
    add_leaf(w, v);
    return w->err ? NULL : tg_null();
  }
  tg_type t = tg_value_type(v);
  if (t != TG_LIST && t != TG_MAP) return tg_value_ref(v);
  size_t n = t == TG_LIST ? tg_list_len(v) : tg_map_len(v);
  for (size_t i = 0; i < n; i++) {
    tg_value *c = t == TG_LIST ? tg_list_get(v, i) : tg_map_value_at(v, i);
    /* Kept as it is, without the reference strip would take and this loop
     * drop: a batch's arguments are mostly such (scalars, small strings). */
    if (tg__is_imm(c) || (c->type != TG_LIST && c->type != TG_MAP && !is_large(c))) continue;
    w->stack[w->depth++] = i;
    tg_value *x = strip(w, c);
    w->depth--;
    if (!x) return NULL;
    if (x == c) { /* unchanged (a reference to the same value) */
      tg_value_unref(x);
      continue;
    }
    return t == TG_LIST ? strip_list(w, v, i, x) : strip_map(w, v, i, x);
  }
  return tg_value_ref(v);
}

static size_t pad_for(const tg_value *v, int mis);

static void free_buf(void *data, void *hint) {
  (void)hint;
  tg__tsan_acquire(data); /* written by the sender: see util/tsan.h */
  free(data);
}

static void describe(tg__wbuf *d, const walker *w) {
  tg__wbuf_u8(d, 1);
  tg__wbuf_varint(d, w->n);
  for (size_t i = 0; i < w->n; i++) {
    const leaf *l = &w->leaves[i];
    tg__wbuf_u8(d, l->kind);
    tg__wbuf_varint(d, l->kind == L_STREAMED ? l->seq : l->pad);
    tg__wbuf_varint(d, l->depth);
    for (size_t k = 0; k < l->depth; k++) tg__wbuf_varint(d, w->paths[l->path_off + k]);
    if (l->v->type == TG_NDARRAY) {
      const tg__array *a = (const tg__array *)l->v;
      tg__wbuf_u8(d, TG_NDARRAY);
      tg__wbuf_u8(d, a->dtype);
      tg__wbuf_u8(d, a->ndim);
      for (int k = 0; k < a->ndim; k++) tg__wbuf_varint(d, (uint64_t)a->shape[k]);
    } else {
      tg__wbuf_u8(d, TG_BYTES);
      tg__wbuf_varint(d, ((const tg__blob *)l->v)->len);
    }
  }
}

static const void *leaf_data(const tg_value *v, size_t *len) {
  if (v->type == TG_NDARRAY) {
    *len = ((const tg__array *)v)->nbytes;
    return ((const tg__array *)v)->data;
  }
  *len = ((const tg__blob *)v)->len;
  return ((const tg__blob *)v)->data;
}

static int send_leaves(tg__link *sock, const walker *w, uint64_t *bytes, tg_error *err) {
  size_t last = w->n;
  for (size_t i = 0; i < w->n; i++)
    if (w->leaves[i].kind != L_STREAMED) last = i;
  for (size_t i = 0; i < w->n; i++) {
    if (w->leaves[i].kind == L_STREAMED) continue;
    const tg_value *v = w->leaves[i].v;
    size_t len;
    const void *data = leaf_data(v, &len);
    if (w->leaves[i].kind == L_SHM) { /* its descriptor stands for it */
      int rc = tg__link_send_copy(sock, w->descs.p + w->leaves[i].desc_off,
                                  w->leaves[i].desc_len, i == last ? 0 : TG__LINK_MORE);
      if (rc != TG_OK) return tg__error_set(err, rc, "sending a value: %s", tg_strerror(rc));
      /* What crossed the socket; the stream counts the carried bytes. */
      if (bytes) *bytes += w->leaves[i].desc_len;
      continue;
    }
    zmq_msg_t m;
    tg_value *hold = tg_value_ref((tg_value *)v);
    data = (const char *)data - w->leaves[i].pad; /* zero bytes of ours */
    len += w->leaves[i].pad;
    tg__tsan_release(hold);
    if (zmq_msg_init_data(&m, (void *)data, len, tg__zmq_unref_hint, hold) != 0) {
      tg_value_unref(hold);
      return tg__error_set(err, TG_ENOMEM, "out of memory sending a value");
    }
    int rc = tg__link_send(sock, &m, i == last ? 0 : TG__LINK_MORE);
    if (rc != TG_OK) return tg__error_set(err, rc, "sending a value: %s", tg_strerror(rc));
    if (bytes) *bytes += len;
  }
  return TG_OK;
}

/* The message: [rid], head, descriptor, skeleton (the encoding in *skel,
 * taken), leaf parts. */
static int send_parts(tg__link *sock, const void *rid, size_t rid_len,
                      const tg__wbuf *head, walker *w, zmq_msg_t *skel,
                      uint64_t *bytes, tg_error *err) {
  tg__wbuf d = {0};
  describe(&d, w);
  int rc = d.oom ? tg__error_set(err, TG_ENOMEM, "out of memory sending a value") : TG_OK;
  bool parts = false;
  for (size_t i = 0; i < w->n; i++) parts |= w->leaves[i].kind != L_STREAMED;
  if (rc == TG_OK && rid_len) rc = tg__link_send_copy(sock, rid, rid_len, TG__LINK_MORE);
  if (rc == TG_OK) rc = tg__link_send_copy(sock, head->p, head->len, TG__LINK_MORE);
  if (rc == TG_OK) rc = tg__link_send_copy(sock, d.p, d.len, TG__LINK_MORE);
  if (rc != TG_OK && (!err || err->code != rc))
    rc = tg__error_set(err, rc, "sending a value: %s", tg_strerror(rc));
  tg__wbuf_free(&d);
  if (rc != TG_OK) {
    zmq_msg_close(skel);
    return rc;
  }
  size_t elen = zmq_msg_size(skel);
  rc = tg__link_send(sock, skel, parts ? TG__LINK_MORE : 0);
  if (rc != TG_OK) return tg__error_set(err, rc, "sending a value: %s", tg_strerror(rc));
  if (bytes) *bytes += elen;
  return send_leaves(sock, w, bytes, err);
}

/* Send the value whose large leaves w lists and whose skeleton is encoded
 * in *skel (taken): streamed leaves first, as messages of their own, or
 * leaves in shared segments, then the message. */
static int send_walked(tg__link *sock, const void *rid, size_t rid_len, const tg__wbuf *head,
                       walker *w, zmq_msg_t *skel, int peer_misalign, tg__stream *st,
                       uint64_t *bytes, tg_error *err) {
  int rc = TG_OK;
  for (size_t i = 0; rc == TG_OK && i < w->n; i++) {
    leaf *l = &w->leaves[i];
    size_t len;
    const void *data = leaf_data(l->v, &len);
    if (len >= TG__STREAM_MIN && tg__shm_can_send(st->shm)) {
      size_t at = w->descs.len;
      if (tg__shm_put(st->shm, data, len, &w->descs) == TG_OK && !w->descs.oom) {
        l->kind = L_SHM;
        l->desc_off = at;
        l->desc_len = w->descs.len - at;
        st->shm_out += len;
        continue;
      }
      /* Out of memory or of descriptors for a segment: this one is
       * streamed (or sent as a part) instead. */
      w->descs.len = at;
      w->descs.oom = false;
    }
    if (len < TG__STREAM_MIN || !sock->streams) {
      if (peer_misalign > 0) l->pad = pad_for(l->v, peer_misalign);
      continue;
    }
    l->kind = L_STREAMED;
    rc = tg__stream_send(sock, rid, rid_len, data, len, (tg_value *)l->v, st, &l->seq,
                         bytes, err);
  }
  if (rc != TG_OK) {
    zmq_msg_close(skel);
    return rc;
  }
  return send_parts(sock, rid, rid_len, head, w, skel, bytes, err);
}

static walker *walker_new(void) {
  /* Once per message: clearing the path stack (some KB) cost more than
   * the rest of a small message's walk. */
  walker *w = tg__malloc(sizeof *w);
  if (w) memset(w, 0, offsetof(walker, stack));
  return w;
}

static void walker_free(walker *w) {
  tg__wbuf_free(&w->descs);
  tg__free(w->leaves);
  tg__free(w->paths);
  tg__free(w);
}

int tg__wire_send(tg__link *sock, const void *rid, size_t rid_len, const tg__wbuf *head,
                  const tg_value *v, int peer_misalign, tg__stream *st,
                  uint64_t *bytes, tg_error *err) {
  if (head->oom) return tg__error_set(err, TG_ENOMEM, "out of memory sending a value");
  if (!v) {
    int rc = rid_len ? tg__link_send_copy(sock, rid, rid_len, TG__LINK_MORE) : TG_OK;
    if (rc == TG_OK) rc = tg__link_send_copy(sock, head->p, head->len, 0);
    if (rc != TG_OK) return tg__error_set(err, rc, "sending: %s", tg_strerror(rc));
    return TG_OK;
  }
  walker *w = walker_new();
  if (!w) return tg__error_set(err, TG_ENOMEM, "out of memory sending a value");
  int rc = TG_OK;
  void *enc = NULL;
  size_t elen = 0;
  zmq_msg_t m;
  tg_value *skel = strip(w, (tg_value *)v);
  if (!skel) rc = tg__error_set(err, w->err ? w->err : TG_ENOMEM,
                                "out of memory sending a value");
  if (rc == TG_OK) rc = tg_encode(skel, NULL, &enc, &elen, err);
  tg_value_unref(skel);
  if (rc == TG_OK) {
    tg__tsan_release(enc);
    if (zmq_msg_init_data(&m, enc, elen, free_buf, NULL) != 0) {
      free(enc);
      rc = tg__error_set(err, TG_ENOMEM, "out of memory sending a value");
    }
  }
  if (rc == TG_OK) rc = send_walked(sock, rid, rid_len, head, w, &m, peer_misalign, st, bytes, err);
  walker_free(w);
  return rc;
}

/* ---- receiving ---------------------------------------------------------- */

/* Owners of received array data. Both know how many bytes of zeros (of
 * ours) lie before the data, so that sending the array on can put padding
 * in front of it without a copy. */
typedef struct zpart {
  size_t prefix; /* first: read through either type */
  zmq_msg_t m;
} zpart;

typedef struct pbuf {
  size_t prefix;
  void *mem;
} pbuf;

#define PBUF_PREFIX 64

static void zpart_release(void *ctx, void *data) {
  (void)data;
  zmq_msg_close(&((zpart *)ctx)->m);
  tg__free(ctx);
}

static void pbuf_release(void *ctx, void *data) {
  (void)data;
  tg__free(((pbuf *)ctx)->mem);
  tg__free(ctx);
}

/* Take over part m (left empty) as the owner of its data. */
static zpart *adopt(zmq_msg_t *m, size_t prefix) {
  zpart *z = tg__malloc(sizeof *z);
  if (!z) return NULL;
  z->prefix = prefix;
  zmq_msg_init(&z->m);
  zmq_msg_move(&z->m, m);
  return z;
}

/* Padding to send before leaf v so that it lands aligned where the
 * receiver's buffers start `mis` bytes past a 64-byte boundary: only when
 * the bytes before the data are zeros of ours. */
static size_t pad_for(const tg_value *v, int mis) {
  size_t want = (size_t)(TG_ARRAY_ALIGN - mis) % TG_ARRAY_ALIGN;
  if (v->type != TG_NDARRAY || want == 0) return 0;
  const tg__region *r = ((const tg__array *)v)->region;
  if (!r || (r->release != zpart_release && r->release != pbuf_release)) return 0;
  return *(const size_t *)r->ctx >= want ? want : 0;
}

int tg__wire_misalign(void) {
  static _Atomic int mis = -1;
  int m = atomic_load(&mis);
  if (m >= 0) return m;
  /* Large parts are received into buffers allocated as this one is (not
   * touched: no memory is used). */
  zmq_msg_t t;
  if (zmq_msg_init_size(&t, (size_t)64 << 20) != 0) return 0;
  m = (int)((uintptr_t)zmq_msg_data(&t) % TG_ARRAY_ALIGN);
  zmq_msg_close(&t);
  atomic_store(&mis, m);
  return m;
}

/* An aligned copy of len bytes, zeros before it. */
static tg_value *copy_array(tg_dtype dt, int ndim, const int64_t *shape,
                            const void *data, size_t len) {
  pbuf *b = tg__malloc(sizeof *b);
  uint8_t *mem = b ? tg__aligned_alloc(TG_ARRAY_ALIGN, PBUF_PREFIX + len) : NULL;
  if (!mem) {
    tg__free(b);
    return NULL;
  }
  /* Fresh memory costs a fault per 4 KiB page on first touch, more than
   * the copy: ask for huge pages where they fit. */
  const uintptr_t huge = (uintptr_t)2 << 20;
  uintptr_t lo = ((uintptr_t)mem + huge - 1) & ~(huge - 1);
  uintptr_t hi = ((uintptr_t)mem + PBUF_PREFIX + len) & ~(huge - 1);
  if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE); /* a hint */
  b->prefix = PBUF_PREFIX;
  b->mem = mem;
  memset(mem, 0, PBUF_PREFIX);
  memcpy(mem + PBUF_PREFIX, data, len);
  return tg_ndarray_wrap(dt, ndim, shape, mem + PBUF_PREFIX, pbuf_release, b);
}

/* The leaf described at r: from part m, or (m NULL) streamed value seq of
 * st, or (shm) the segment part m describes. NULL on error (err set). */
static tg_value *leaf_value(tg__rbuf *r, zmq_msg_t *m, size_t pad, tg__stream *st,
                            uint64_t seq, bool shm, tg_error *err) {
  uint8_t type = tg__rbuf_u8(r);
  uint64_t blen = 0;
  int64_t shape[TG_NDIM_MAX];
  uint8_t dt = 0, ndim = 0;
  size_t size, nbytes = 0;
  if (type == TG_BYTES) {
    blen = tg__rbuf_varint(r);
  } else if (type == TG_NDARRAY) {
    dt = tg__rbuf_u8(r), ndim = tg__rbuf_u8(r);
    if (ndim > TG_NDIM_MAX || !tg_dtype_size((tg_dtype)dt)) goto bad;
    for (int k = 0; k < ndim; k++) shape[k] = (int64_t)tg__rbuf_count(r, INT64_MAX);
    if (r->bad || !tg__shape_size((tg_dtype)dt, ndim, shape, &size, &nbytes)) goto bad;
  } else {
    goto bad;
  }
  if (r->bad) goto bad;
  size_t want = type == TG_BYTES ? (size_t)blen : nbytes;
  if (type == TG_BYTES && blen != want) goto bad;
  tg_value *v;
  if (!m || shm) {
    void *p, *hint;
    void (*release)(void *, void *) = tg__stream_release;
    if (shm ? tg__shm_get(st->shm, zmq_msg_data(m), zmq_msg_size(m), want, st->limit,
                          st->pool, &p, &release, &hint, err) != TG_OK
            : tg__stream_take(st, seq, want, &p, &hint, err) != TG_OK)
      return NULL;
    if (shm) st->shm_in += want;
    /* On failure both release the buffer themselves. */
    if (type == TG_BYTES) {
      tg__region *reg = tg__region_new(p, release, hint);
      v = reg ? tg__blob_borrow(TG_BYTES, p, want, reg) : NULL;
      if (reg) tg__region_unref(reg);
    } else {
      v = tg_ndarray_wrap((tg_dtype)dt, ndim, shape, p, release, hint);
    }
    if (!v) tg__error_set(err, TG_ENOMEM, "out of memory receiving a value");
    return v;
  }
  if (pad >= TG_ARRAY_ALIGN || pad > zmq_msg_size(m)) goto bad;
  size_t len = zmq_msg_size(m) - pad;
  uint8_t *data = (uint8_t *)zmq_msg_data(m) + pad;
  if (len != want) goto bad;
  if (type == TG_BYTES) {
    zpart *z = adopt(m, 0);
    tg__region *reg = z ? tg__region_new(data, zpart_release, z) : NULL;
    v = reg ? tg__blob_borrow(TG_BYTES, (const char *)data, len, reg) : NULL;
    if (reg) tg__region_unref(reg); /* a failed region_new released z */
    if (!v) tg__error_set(err, TG_ENOMEM, "out of memory receiving a value");
    return v;
  }
  for (size_t i = 0; i < pad; i++) /* the padding is zeros, checked: sent on later */
    if (data[(ptrdiff_t)i - (ptrdiff_t)pad]) goto bad;
  if ((uintptr_t)data % TG_ARRAY_ALIGN == 0) { /* use ZeroMQ's buffer */
    zpart *z = adopt(m, pad);
    v = z ? tg_ndarray_wrap((tg_dtype)dt, ndim, shape, data, zpart_release, z) : NULL;
  } else {
    v = copy_array((tg_dtype)dt, ndim, shape, data, len);
  }
  if (!v) tg__error_set(err, TG_ENOMEM, "out of memory receiving a value");
  return v;
bad:
  tg__error_set(err, TG_EFORMAT, "bad large-value descriptor");
  return NULL;
}

/* Put leaf x (taken) at path[0..depth) of *root. */
static int place(tg_value **root, const size_t *path, size_t depth, tg_value *x,
                 tg_error *err) {
  tg_value **slot = root;
  for (size_t k = 0; k < depth; k++) {
    tg_value *c = *slot;
    size_t i = path[k];
    /* Only fresh containers of the skeleton may be written. */
    if (tg__is_imm(c) || atomic_load(&c->refs) != 1) break;
    if (c->type == TG_LIST && i < ((tg__list *)c)->len)
      slot = &((tg__list *)c)->items[i];
    else if (c->type == TG_MAP && i < ((tg__map *)c)->len)
      slot = &((tg__map *)c)->entries[i].val;
    else
      break;
    if (k + 1 < depth) continue;
    if (*slot != tg_null()) break;
    *slot = x; /* null is immortal: nothing to release */
    return TG_OK;
  }
  if (depth == 0 && *root == tg_null()) {
    *root = x;
    return TG_OK;
  }
  tg_value_unref(x);
  return tg__error_set(err, TG_EFORMAT, "large value placed at a bad path");
}

/* Each of the large leaves the descriptor at r lists (nl of them), from
 * parts[*next_part..n) and the streamed values of st, handed to got with
 * its path (got takes the leaf, and fails with err set). */
typedef int (*got_leaf)(void *ctx, tg_value *x, const size_t *path, size_t depth,
                        tg_error *err);

static int each_leaf(tg__rbuf *r, uint64_t nl, zmq_msg_t *parts, size_t n, size_t *next_part,
                     tg__stream *st, uint64_t *bytes, got_leaf got, void *ctx, tg_error *err) {
  size_t path[TG_DEPTH_MAX];
  int rc = TG_OK;
  for (uint64_t i = 0; i < nl && rc == TG_OK; i++) {
    uint8_t kind = tg__rbuf_u8(r);
    bool streamed = kind == L_STREAMED, shm = kind == L_SHM;
    if (kind > L_SHM || (shm && !st->shm)) r->bad = true;
    uint64_t pad_or_seq = tg__rbuf_varint(r);
    size_t depth = (size_t)tg__rbuf_count(r, TG_DEPTH_MAX);
    for (size_t k = 0; k < depth; k++) path[k] = (size_t)tg__rbuf_varint(r);
    zmq_msg_t *m = streamed || *next_part >= n ? NULL : &parts[(*next_part)++];
    size_t len = m ? zmq_msg_size(m) : 0;
    if (!streamed && (!m || pad_or_seq >= TG_ARRAY_ALIGN)) r->bad = true;
    if (shm && pad_or_seq) r->bad = true;
    tg_value *x = r->bad ? NULL : leaf_value(r, m, (size_t)pad_or_seq, st, pad_or_seq, shm, err);
    if (!x) return r->bad ? tg__error_set(err, TG_EFORMAT, "bad value descriptor") : err->code;
    if (streamed) leaf_data(x, &len); /* a segment's: its descriptor's size */
    if (bytes) *bytes += len;
    rc = got(ctx, x, path, depth, err);
  }
  return rc;
}

/* The descriptor's leaf count, bounded by the parts present and the
 * values streamed. */
static uint64_t leaf_count(tg__rbuf *r, zmq_msg_t *parts, size_t n, const tg__stream *st) {
  tg__rbuf_init(r, zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]));
  return tg__rbuf_u8(r) == 1 ? tg__rbuf_count(r, n - 2 + st->nin) : 0;
}

static int place_leaf(void *root, tg_value *x, const size_t *path, size_t depth,
                      tg_error *err) {
  return place(root, path, depth, x, err);
}

int tg__wire_recv(zmq_msg_t *parts, size_t n, tg__stream *st, size_t *used,
                  tg_value **out, uint64_t *bytes, tg_error *err) {
  *out = NULL;
  *used = 0;
  if (n < 2) return tg__error_set(err, TG_EFORMAT, "a value needs 2 message parts");
  tg__rbuf r;
  uint64_t nl = leaf_count(&r, parts, n, st);
  if (r.bad) return tg__error_set(err, TG_EFORMAT, "bad value descriptor");
  tg_value *v = NULL;
  int rc = tg_decode(zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]), &v, err);
  if (rc != TG_OK) return rc;
  if (bytes) *bytes += zmq_msg_size(&parts[1]);
  size_t next_part = 2;
  tg_error local;
  tg_error *e = err ? err : &local;
  tg_error_clear(e);
  rc = each_leaf(&r, nl, parts, n, &next_part, st, bytes, place_leaf, &v, e);
  if (rc != TG_OK) {
    tg_value_unref(v);
    return rc;
  }
  *out = v;
  *used = next_part;
  return TG_OK;
}

/* ---- values held as they came --------------------------------------------- */

struct tg__wire_held {
  zmq_msg_t skel; /* the skeleton's encoding, as received */
  walker *w;      /* the large leaves (a reference to each) and their paths */
};

static int hold_leaf(void *ctx, tg_value *x, const size_t *path, size_t depth,
                     tg_error *err) {
  walker *w = ctx;
  memcpy(w->stack, path, depth * sizeof *path);
  w->depth = depth;
  add_leaf(w, x);
  if (!w->err) return TG_OK;
  tg_value_unref(x);
  return tg__error_set(err, TG_ENOMEM, "out of memory receiving a value");
}

void tg__wire_held_free(tg__wire_held *h) {
  if (!h) return;
  for (size_t i = 0; i < h->w->n; i++) tg_value_unref((tg_value *)h->w->leaves[i].v);
  walker_free(h->w);
  zmq_msg_close(&h->skel);
  tg__free(h);
}

int tg__wire_hold(zmq_msg_t *parts, size_t n, tg__stream *st, size_t *used,
                  tg__wire_held **out, uint64_t *bytes, tg_error *err) {
  *out = NULL;
  *used = 0;
  tg_error local;
  tg_error *e = err ? err : &local;
  tg_error_clear(e);
  if (n < 2) return tg__error_set(e, TG_EFORMAT, "a value needs 2 message parts");
  tg__rbuf r;
  uint64_t nl = leaf_count(&r, parts, n, st);
  if (r.bad) return tg__error_set(e, TG_EFORMAT, "bad value descriptor");
  tg__header hd;
  int rc = tg__header_read(zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]), &hd, e);
  if (rc != TG_OK) return rc;
  tg__wire_held *h = tg__malloc(sizeof *h);
  walker *w = h ? walker_new() : NULL;
  if (!w) {
    tg__free(h);
    return tg__error_set(e, TG_ENOMEM, "out of memory receiving a value");
  }
  h->w = w;
  zmq_msg_init(&h->skel);
  zmq_msg_move(&h->skel, &parts[1]);
  if (bytes) *bytes += zmq_msg_size(&h->skel);
  size_t next_part = 2;
  rc = each_leaf(&r, nl, parts, n, &next_part, st, bytes, hold_leaf, w, e);
  if (rc != TG_OK) {
    tg__wire_held_free(h);
    return rc;
  }
  *out = h;
  *used = next_part;
  return TG_OK;
}

int tg__wire_held_decode(const tg__wire_held *h, tg_value **out, tg_error *err) {
  *out = NULL;
  tg_error local;
  tg_error *e = err ? err : &local;
  tg_error_clear(e);
  tg_value *v = NULL;
  int rc = tg_decode(zmq_msg_data((zmq_msg_t *)&h->skel), zmq_msg_size((zmq_msg_t *)&h->skel),
                     &v, e);
  for (size_t i = 0; rc == TG_OK && i < h->w->n; i++) {
    const leaf *l = &h->w->leaves[i];
    rc = place(&v, h->w->paths + l->path_off, l->depth, tg_value_ref((tg_value *)l->v), e);
  }
  if (rc != TG_OK) {
    tg_value_unref(v);
    return rc;
  }
  *out = v;
  return TG_OK;
}

int tg__wire_send_held(tg__link *sock, const void *rid, size_t rid_len, const tg__wbuf *head,
                       tg__wire_held *h, int peer_misalign, tg__stream *st, uint64_t *bytes,
                       tg_error *err) {
  if (head->oom) return tg__error_set(err, TG_ENOMEM, "out of memory sending a value");
  walker *w = h->w;
  for (size_t i = 0; i < w->n; i++) { /* how each goes is this send's choice */
    w->leaves[i].kind = L_PART;
    w->leaves[i].pad = 0;
  }
  w->descs.len = 0;
  w->descs.oom = false;
  zmq_msg_t m;
  zmq_msg_init(&m);
  if (zmq_msg_copy(&m, &h->skel) != 0) /* shares the bytes */
    return tg__error_set(err, TG_ENOMEM, "out of memory sending a value");
  return send_walked(sock, rid, rid_len, head, w, &m, peer_misalign, st, bytes, err);
}

/* ---- size estimate -------------------------------------------------------- */

static size_t estimate(const tg_value *v, size_t limit, size_t acc) {
  if (tg__is_imm(v)) return acc + 9;
  switch (v->type) {
    case TG_STR:
    case TG_BYTES: return acc + 10 + ((const tg__blob *)v)->len;
    case TG_NDARRAY: return acc + 16 + ((const tg__array *)v)->nbytes;
    case TG_LIST: {
      acc += 10;
      const tg__list *l = (const tg__list *)v;
      for (size_t i = 0; i < l->len && acc <= limit; i++) acc = estimate(l->items[i], limit, acc);
      return acc;
    }
    case TG_MAP: {
      acc += 10;
      const tg__map *m = (const tg__map *)v;
      for (size_t i = 0; i < m->len && acc <= limit; i++)
        acc = estimate(m->entries[i].val, limit, acc + 10 + m->entries[i].key_len);
      return acc;
    }
    default: return acc + 9;
  }
}

size_t tg__wire_estimate(const tg_value *v, size_t limit) {
  return estimate(v, limit, 0);
}
