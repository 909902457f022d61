/* lib/backends/procs_codec.c: values on the processes wire. The encoding
 * is the serializer's meta section (format.h tags, varints, zigzag ints)
 * with three wire-only tags: small arrays carry their bytes inline, and
 * large arrays and bytes name a shared-memory segment instead.
 *
 * Decoding trusts nothing: a worker may have scribbled over its memory
 * before it wrote, so every length is checked against the bytes left
 * before anything is allocated, and nesting is bounded. */
#include "procs_internal.h"

/* ---- encoding ---------------------------------------------------------------- */

typedef struct enc {
  tg__pbuf *b;
  tg__penc_seg_fn seg;
  void *ctx;
} enc;

static inline int put_head(tg__pbuf *b, uint8_t tag, uint64_t u, size_t extra) {
  if (tg__pbuf_reserve(b, 1 + TG__VARINT_MAX + extra) != TG_OK) return TG_ENOMEM;
  tg__pbuf_u8(b, tag);
  tg__pbuf_varint(b, u);
  return TG_OK;
}

int tg__penc_str(tg__pbuf *b, const char *s, size_t len) {
  if (tg__pbuf_reserve(b, TG__VARINT_MAX + len) != TG_OK) return TG_ENOMEM;
  tg__pbuf_varint(b, len);
  tg__pbuf_mem(b, s, len);
  return TG_OK;
}

static int put_ref(tg__pbuf *b, const tg__pref *r) {
  if (tg__pbuf_reserve(b, 3 * TG__VARINT_MAX + 1) != TG_OK) return TG_ENOMEM;
  tg__pbuf_varint(b, r->id);
  tg__pbuf_varint(b, r->size);
  tg__pbuf_varint(b, r->off);
  tg__pbuf_u8(b, r->has_fd);
  return TG_OK;
}

/* A segment reference for v, or 1 when it goes inline. */
static int try_seg(enc *e, const tg_value *v, size_t nbytes, tg__pref *r) {
  if (!e->seg || nbytes < TG__PROCS_SHM_MIN) return 1;
  memset(r, 0, sizeof *r);
  return e->seg(e->ctx, v, r);
}

static int enc_blob(enc *e, const tg__blob *bl) {
  tg__pref r;
  int rc = bl->h.type == TG_BYTES ? try_seg(e, &bl->h, bl->len, &r) : 1;
  if (rc < 0) return rc;
  if (rc == TG_OK) {
    if (put_head(e->b, TG__TAG_SEG_BYTES, bl->len, 0) != TG_OK) return TG_ENOMEM;
    return put_ref(e->b, &r);
  }
  uint8_t tag = bl->h.type == TG_STR ? TG__TAG_STR : TG__TAG_BYTES;
  if (put_head(e->b, tag, bl->len, bl->len) != TG_OK) return TG_ENOMEM;
  tg__pbuf_mem(e->b, bl->data, bl->len);
  return TG_OK;
}

static int enc_array(enc *e, const tg__array *a) {
  tg__pref r;
  int rc = try_seg(e, &a->h, a->nbytes, &r);
  if (rc < 0) return rc;
  size_t inline_bytes = rc == TG_OK ? 0 : a->nbytes;
  if (tg__pbuf_reserve(e->b, 3 + (size_t)a->ndim * TG__VARINT_MAX + inline_bytes) != TG_OK)
    return TG_ENOMEM;
  tg__pbuf_u8(e->b, rc == TG_OK ? TG__TAG_SEG_ARRAY : TG__TAG_ARRAY_INLINE);
  tg__pbuf_u8(e->b, a->dtype);
  tg__pbuf_u8(e->b, a->ndim);
  for (int i = 0; i < a->ndim; i++) tg__pbuf_varint(e->b, (uint64_t)a->shape[i]);
  if (rc == TG_OK) return put_ref(e->b, &r);
  tg__pbuf_mem(e->b, a->data, a->nbytes);
  return TG_OK;
}

static bool is_int(const tg_value *v) { return tg__is_imm(v) || v->type == TG_INT; }
static int64_t int_of(const tg_value *v) {
  return tg__is_imm(v) ? tg__imm_get(v) : ((const tg__int *)v)->i;
}

static int enc_value(enc *e, const tg_value *v);

static int enc_list(enc *e, const tg__list *l) {
  bool ints = l->len > 0;
  for (size_t i = 0; ints && i < l->len; i++) ints = is_int(l->items[i]);
  if (ints) {
    if (l->len > (SIZE_MAX / 2) / TG__VARINT_MAX ||
        put_head(e->b, TG__TAG_INT_LIST, l->len, l->len * TG__VARINT_MAX) != TG_OK)
      return TG_ENOMEM;
    for (size_t i = 0; i < l->len; i++)
      tg__pbuf_varint(e->b, tg__zigzag(int_of(l->items[i])));
    return TG_OK;
  }
  if (put_head(e->b, TG__TAG_LIST, l->len, 0) != TG_OK) return TG_ENOMEM;
  for (size_t i = 0; i < l->len; i++) {
    int rc = enc_value(e, l->items[i]);
    if (rc != TG_OK) return rc;
  }
  return TG_OK;
}

static int enc_map(enc *e, const tg__map *m) {
  if (put_head(e->b, TG__TAG_MAP, m->len, 0) != TG_OK) return TG_ENOMEM;
  for (size_t i = 0; i < m->len; i++) {
    const tg__map_entry *en = &m->entries[i];
    int rc = tg__penc_str(e->b, m->keys + en->key_off, en->key_len);
    if (rc == TG_OK) rc = enc_value(e, en->val);
    if (rc != TG_OK) return rc;
  }
  return TG_OK;
}

static int enc_value(enc *e, const tg_value *v) {
  if (is_int(v)) return put_head(e->b, TG__TAG_INT, tg__zigzag(int_of(v)), 0);
  switch ((tg_type)v->type) {
    case TG_NULL:
    case TG_BOOL:
      if (tg__pbuf_reserve(e->b, 1) != TG_OK) return TG_ENOMEM;
      tg__pbuf_u8(e->b, v->type == TG_NULL  ? TG__TAG_NULL
                        : tg_value_bool(v) ? TG__TAG_TRUE
                                           : TG__TAG_FALSE);
      return TG_OK;
    case TG_FLOAT:
      if (tg__pbuf_reserve(e->b, 9) != TG_OK) return TG_ENOMEM;
      tg__pbuf_u8(e->b, TG__TAG_FLOAT);
      tg__pbuf_mem(e->b, &((const tg__float *)v)->d, 8);
      return TG_OK;
    case TG_STR:
    case TG_BYTES: return enc_blob(e, (const tg__blob *)v);
    case TG_NDARRAY: return enc_array(e, (const tg__array *)v);
    case TG_LIST: return enc_list(e, (const tg__list *)v);
    case TG_MAP: return enc_map(e, (const tg__map *)v);
    default: return TG_EINVAL;
  }
}

int tg__penc_value(tg__pbuf *b, const tg_value *v, tg__penc_seg_fn seg,
                   void *ctx) {
  if (!v) return TG_EINVAL;
  enc e = {b, seg, ctx};
  return enc_value(&e, v);
}

/* ---- decoding ---------------------------------------------------------------- */

static int bad(tg__pdec *d, const char *what) {
  d->err = what;
  return TG_EPROTO;
}

static size_t left(const tg__pdec *d) { return (size_t)(d->end - d->p); }

int tg__pdec_u8(tg__pdec *d, uint8_t *x) {
  if (d->p >= d->end) return bad(d, "message ends early");
  *x = *d->p++;
  return TG_OK;
}

int tg__pdec_u32(tg__pdec *d, uint32_t *x) {
  if (left(d) < 4) return bad(d, "message ends early");
  memcpy(x, d->p, 4);
  d->p += 4;
  return TG_OK;
}

int tg__pdec_varint(tg__pdec *d, uint64_t *u) {
  uint64_t v = 0;
  for (unsigned i = 0; i < TG__VARINT_MAX; i++) {
    if (d->p >= d->end) return bad(d, "varint runs past the end");
    uint8_t b = *d->p++;
    v |= (uint64_t)(b & 0x7F) << (7 * i);
    if (b < 0x80) {
      *u = v;
      return TG_OK;
    }
  }
  return bad(d, "varint too long");
}

int tg__pdec_str(tg__pdec *d, const char **s, size_t *len) {
  uint64_t n;
  if (tg__pdec_varint(d, &n) != TG_OK) return TG_EPROTO;
  if (n > left(d)) return bad(d, "string runs past the end");
  *s = (const char *)d->p;
  *len = (size_t)n;
  d->p += n;
  return TG_OK;
}

/* dtype, ndim and dims into r; checks the size. */
static int dec_shape(tg__pdec *d, tg__pref *r) {
  uint8_t dt, nd;
  if (tg__pdec_u8(d, &dt) || tg__pdec_u8(d, &nd)) return TG_EPROTO;
  if (!tg_dtype_size((tg_dtype)dt) || nd > TG_NDIM_MAX) return bad(d, "bad array dtype or ndim");
  r->type = TG_NDARRAY;
  r->dtype = (tg_dtype)dt;
  r->ndim = nd;
  for (int i = 0; i < nd; i++) {
    uint64_t x;
    if (tg__pdec_varint(d, &x)) return TG_EPROTO;
    if (x > INT64_MAX) return bad(d, "array dimension too large");
    r->shape[i] = (int64_t)x;
  }
  size_t n;
  if (!tg__shape_size(r->dtype, nd, r->shape, &n, &r->nbytes))
    return bad(d, "array size overflows");
  return TG_OK;
}

static int dec_ref(tg__pdec *d, tg__pref *r, tg_value **out) {
  uint8_t f;
  if (tg__pdec_varint(d, &r->id) || tg__pdec_varint(d, &r->size) ||
      tg__pdec_varint(d, &r->off) || tg__pdec_u8(d, &f))
    return TG_EPROTO;
  r->has_fd = f != 0;
  if (r->off > r->size || r->nbytes > r->size - r->off)
    return bad(d, "segment reference out of bounds");
  if (!d->seg) return bad(d, "unexpected segment reference");
  int rc = d->seg(d->ctx, r, out);
  if (rc == TG_EPROTO && !d->err) d->err = "unknown segment";
  return rc;
}

static int dec_value(tg__pdec *d, unsigned level, tg_value **out);

static int dec_list(tg__pdec *d, unsigned level, bool ints, tg_value **out) {
  uint64_t n;
  if (tg__pdec_varint(d, &n)) return TG_EPROTO;
  if (n > left(d)) return bad(d, "list count exceeds the bytes left");
  tg_value *l = tg_list_alloc((size_t)n);
  if (!l) return TG_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    tg_value *x = NULL;
    int rc;
    if (ints) {
      uint64_t u;
      rc = tg__pdec_varint(d, &u);
      if (rc == TG_OK) {
        int64_t k = tg__unzigzag(u);
        x = tg__imm_fits(k) ? tg__imm_make(k) : tg_int(k);
        if (!x) rc = TG_ENOMEM;
      }
    } else {
      rc = dec_value(d, level + 1, &x);
    }
    if (rc == TG_OK) rc = tg_list_init_item(l, i, x);
    if (rc != TG_OK) {
      tg_value_unref(l);
      return rc;
    }
  }
  *out = l;
  return TG_OK;
}

static int dec_map(tg__pdec *d, unsigned level, tg_value **out) {
  uint64_t n;
  if (tg__pdec_varint(d, &n)) return TG_EPROTO;
  if (n > left(d)) return bad(d, "map count exceeds the bytes left");
  tg_value *m = tg_map_new((size_t)n);
  if (!m) return TG_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    const char *k;
    size_t klen;
    tg_value *x = NULL;
    int rc = tg__pdec_str(d, &k, &klen);
    if (rc == TG_OK) rc = dec_value(d, level + 1, &x);
    if (rc == TG_OK) rc = tg_map_put(m, k, klen, x);
    if (rc != TG_OK) {
      tg_value_unref(m);
      return rc;
    }
  }
  *out = m;
  return TG_OK;
}

static int dec_inline_array(tg__pdec *d, tg_value **out) {
  tg__pref r;
  if (dec_shape(d, &r)) return TG_EPROTO;
  if (r.nbytes > left(d)) return bad(d, "array data runs past the end");
  *out = tg_ndarray_copy(r.dtype, r.ndim, r.shape, d->p);
  d->p += r.nbytes;
  return *out ? TG_OK : TG_ENOMEM;
}

static int dec_blob(tg__pdec *d, uint8_t tag, tg_value **out) {
  const char *s;
  size_t n;
  if (tg__pdec_str(d, &s, &n)) return TG_EPROTO;
  if (tag == TG__TAG_STR) {
    *out = tg_str(s, n);
    return *out ? TG_OK : (tg__utf8_valid(s, n) ? TG_ENOMEM : bad(d, "str is not UTF-8"));
  }
  *out = tg_bytes(s, n);
  return *out ? TG_OK : TG_ENOMEM;
}

static int dec_value(tg__pdec *d, unsigned level, tg_value **out) {
  uint8_t tag;
  if (level > TG_DEPTH_MAX) return bad(d, "nested too deeply");
  if (tg__pdec_u8(d, &tag)) return TG_EPROTO;
  switch (tag) {
    case TG__TAG_NULL: *out = tg_null(); return TG_OK;
    case TG__TAG_FALSE: *out = tg_bool(false); return TG_OK;
    case TG__TAG_TRUE: *out = tg_bool(true); return TG_OK;
    case TG__TAG_INT: {
      uint64_t u;
      if (tg__pdec_varint(d, &u)) return TG_EPROTO;
      int64_t k = tg__unzigzag(u);
      *out = tg__imm_fits(k) ? tg__imm_make(k) : tg_int(k);
      return *out ? TG_OK : TG_ENOMEM;
    }
    case TG__TAG_FLOAT: {
      double x;
      if (left(d) < 8) return bad(d, "float runs past the end");
      memcpy(&x, d->p, 8);
      d->p += 8;
      *out = tg_float(x);
      return *out ? TG_OK : TG_ENOMEM;
    }
    case TG__TAG_STR:
    case TG__TAG_BYTES: return dec_blob(d, tag, out);
    case TG__TAG_LIST: return dec_list(d, level, false, out);
    case TG__TAG_INT_LIST: return dec_list(d, level, true, out);
    case TG__TAG_MAP: return dec_map(d, level, out);
    case TG__TAG_ARRAY_INLINE: return dec_inline_array(d, out);
    case TG__TAG_SEG_ARRAY: {
      tg__pref r;
      if (dec_shape(d, &r)) return TG_EPROTO;
      return dec_ref(d, &r, out);
    }
    case TG__TAG_SEG_BYTES: {
      tg__pref r;
      uint64_t n;
      memset(&r, 0, sizeof r);
      if (tg__pdec_varint(d, &n)) return TG_EPROTO;
      if (n > SIZE_MAX / 2) return bad(d, "bytes length too large");
      r.type = TG_BYTES;
      r.nbytes = (size_t)n;
      return dec_ref(d, &r, out);
    }
    default: return bad(d, "unknown tag");
  }
}

int tg__pdec_value(tg__pdec *d, tg_value **out) {
  *out = NULL;
  return dec_value(d, 0, out);
}
