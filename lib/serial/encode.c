/* lib/serial/encode.c: value -> tgraph binary format (meta section plus a
 * payload of aligned array data), optionally compressed with zstd. */
#include <zstd.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "serial/format.h"

/* ---- the meta section ---------------------------------------------------- */

/* Make room for n more meta bytes. */
static int meta_reserve(tg__plan *p, size_t n) {
  if (TG__LIKELY(p->meta_cap - p->meta_len >= n)) return TG_OK;
  size_t cap = p->meta_cap ? p->meta_cap * 2 : 256;
  if (cap - p->meta_len < n) cap = p->meta_len + n;
  uint8_t *m = tg__realloc(p->meta, cap);
  if (!m) return TG_ENOMEM;
  p->meta = m;
  p->meta_cap = cap;
  return TG_OK;
}

/* Append tag + varint (the head of most values); reserves `extra` more. */
static int put_head(tg__plan *p, uint8_t tag, uint64_t u, size_t extra) {
  if (meta_reserve(p, 1 + TG__VARINT_MAX + extra) != TG_OK) return TG_ENOMEM;
  p->meta[p->meta_len++] = tag;
  p->meta_len += tg__varint_put(p->meta + p->meta_len, u);
  return TG_OK;
}

/* Reserve a payload slot of len bytes; returns its offset in *off. */
static int payload_add(tg__plan *p, const void *data, size_t len, size_t *off) {
  if (p->nitems == p->items_cap) {
    size_t cap = p->items_cap ? p->items_cap * 2 : 8;
    tg__pitem *it = tg__realloc(p->items, cap * sizeof *it);
    if (!it) return TG_ENOMEM;
    p->items = it;
    p->items_cap = cap;
  }
  *off = tg__align_up(p->payload_len, TG__ALIGN);
  p->items[p->nitems++] = (tg__pitem){.data = data, .len = len, .off = *off};
  p->payload_len = *off + len;
  return TG_OK;
}

static int64_t int_of(const tg_value *v) {
  return tg__is_imm(v) ? tg__imm_get(v) : ((const tg__int *)v)->i;
}

static bool is_int(const tg_value *v) {
  return tg__is_imm(v) || v->type == TG_INT;
}

static int enc_value(tg__plan *p, const tg_value *v);

static int enc_blob(tg__plan *p, const tg__blob *b) {
  if (b->h.type == TG_BYTES && b->len >= TG__BYTES_EXT_MIN) {
    size_t off;
    if (payload_add(p, b->data, b->len, &off) != TG_OK ||
        put_head(p, TG__TAG_BYTES_EXT, b->len, TG__VARINT_MAX) != TG_OK)
      return TG_ENOMEM;
    p->meta_len += tg__varint_put(p->meta + p->meta_len, off);
    return TG_OK;
  }
  uint8_t tag = b->h.type == TG_STR ? TG__TAG_STR : TG__TAG_BYTES;
  if (put_head(p, tag, b->len, b->len) != TG_OK) return TG_ENOMEM;
  if (b->len) memcpy(p->meta + p->meta_len, b->data, b->len);
  p->meta_len += b->len;
  return TG_OK;
}

static int enc_array(tg__plan *p, const tg__array *a) {
  size_t off = 0;
  if (a->nbytes && payload_add(p, a->data, a->nbytes, &off) != TG_OK)
    return TG_ENOMEM;
  if (meta_reserve(p, 3 + (size_t)(a->ndim + 1) * TG__VARINT_MAX) != TG_OK)
    return TG_ENOMEM;
  uint8_t *m = p->meta + p->meta_len;
  size_t n = 0;
  m[n++] = TG__TAG_NDARRAY;
  m[n++] = a->dtype;
  m[n++] = a->ndim;
  for (int i = 0; i < a->ndim; i++) n += tg__varint_put(m + n, (uint64_t)a->shape[i]);
  n += tg__varint_put(m + n, off);
  p->meta_len += n;
  return TG_OK;
}

static int enc_list(tg__plan *p, const tg__list *l) {
  bool ints = l->len > 0;
  for (size_t i = 0; ints && i < l->len; i++) ints = is_int(l->items[i]);
  if (ints) {
    /* One reservation for the whole list keeps the loop free of checks. */
    if (l->len > (SIZE_MAX - 64) / TG__VARINT_MAX ||
        put_head(p, TG__TAG_INT_LIST, l->len, l->len * TG__VARINT_MAX) != TG_OK)
      return TG_ENOMEM;
    uint8_t *m = p->meta + p->meta_len;
    size_t n = 0;
    for (size_t i = 0; i < l->len; i++)
      n += tg__varint_put(m + n, tg__zigzag(int_of(l->items[i])));
    p->meta_len += n;
    return TG_OK;
  }
  if (put_head(p, TG__TAG_LIST, l->len, 0) != TG_OK) return TG_ENOMEM;
  for (size_t i = 0; i < l->len; i++) {
    int rc = enc_value(p, l->items[i]);
    if (rc != TG_OK) return rc;
  }
  return TG_OK;
}

static int enc_map(tg__plan *p, const tg__map *m) {
  if (put_head(p, TG__TAG_MAP, m->len, 0) != TG_OK) return TG_ENOMEM;
  for (size_t i = 0; i < m->len; i++) {
    const tg__map_entry *e = &m->entries[i];
    if (meta_reserve(p, TG__VARINT_MAX + e->key_len) != TG_OK) return TG_ENOMEM;
    p->meta_len += tg__varint_put(p->meta + p->meta_len, e->key_len);
    memcpy(p->meta + p->meta_len, m->keys + e->key_off, e->key_len);
    p->meta_len += e->key_len;
    int rc = enc_value(p, e->val);
    if (rc != TG_OK) return rc;
  }
  return TG_OK;
}

static int enc_value(tg__plan *p, const tg_value *v) {
  if (is_int(v)) return put_head(p, TG__TAG_INT, tg__zigzag(int_of(v)), 0);
  switch ((tg_type)v->type) {
    case TG_NULL:
    case TG_BOOL:
      if (meta_reserve(p, 1) != TG_OK) return TG_ENOMEM;
      p->meta[p->meta_len++] = v->type == TG_NULL ? TG__TAG_NULL
                               : tg_value_bool(v) ? TG__TAG_TRUE
                                                  : TG__TAG_FALSE;
      return TG_OK;
    case TG_FLOAT: {
      if (meta_reserve(p, 9) != TG_OK) return TG_ENOMEM;
      p->meta[p->meta_len] = TG__TAG_FLOAT;
      memcpy(p->meta + p->meta_len + 1, &((const tg__float *)v)->d, 8);
      p->meta_len += 9;
      return TG_OK;
    }
    case TG_STR:
    case TG_BYTES: return enc_blob(p, (const tg__blob *)v);
    case TG_NDARRAY: return enc_array(p, (const tg__array *)v);
    case TG_LIST: return enc_list(p, (const tg__list *)v);
    case TG_MAP: return enc_map(p, (const tg__map *)v);
    default: return TG_EINVAL; /* not a value */
  }
}

void tg__plan_free(tg__plan *p) {
  tg__free(p->meta);
  tg__free(p->items);
  memset(p, 0, sizeof *p);
}

int tg__plan_build(const tg_value *v, tg__plan *p, tg_error *err) {
  memset(p, 0, sizeof *p);
  if (!v) return tg__error_set(err, TG_EINVAL, "cannot encode a NULL value");
  int rc = enc_value(p, v);
  if (rc != TG_OK) {
    tg__plan_free(p);
    return tg__error_set(err, rc, rc == TG_ENOMEM
                                      ? "out of memory while encoding"
                                      : "cannot encode an invalid value");
  }
  return TG_OK;
}

/* ---- header and options -------------------------------------------------- */

void tg__header_write(uint8_t out[TG_HEADER_SIZE], const tg__header *h) {
  memcpy(out, TG__MAGIC, 4);
  memcpy(out + 4, &h->version, 2);
  memcpy(out + 6, &h->flags, 2);
  tg__put_u64(out + 8, h->meta_len);
  tg__put_u64(out + 16, h->payload_len);
  tg__put_u64(out + 24, h->stored_len);
  tg__put_u64(out + 32, h->meta_hash);
  tg__put_u64(out + 40, h->payload_hash);
  tg__put_u64(out + 48, XXH3_64bits(out, 48));
  tg__put_u64(out + 56, 0);
}

int tg__encode_opts_level(const tg_encode_opts *opts, int *level, tg_error *err) {
  *level = 0;
  if (!opts) return TG_OK;
  if (opts->version != TG_ENCODE_OPTS_V1)
    return tg__error_set(err, TG_EINVAL,
                         "encode options version %u is not supported (expected %d)",
                         opts->version, TG_ENCODE_OPTS_V1);
  if (opts->compress &&
      (opts->compress < ZSTD_minCLevel() || opts->compress > ZSTD_maxCLevel()))
    return tg__error_set(err, TG_EINVAL,
                         "zstd level %d is outside %d..%d", opts->compress,
                         ZSTD_minCLevel(), ZSTD_maxCLevel());
  *level = opts->compress;
  return TG_OK;
}

/* ---- assembly ------------------------------------------------------------ */

/* Write the body (meta, padding, payload) of plan p to out, which has room
 * for meta_span + payload_len bytes, and fill the header's sizes and
 * hashes. One large memcpy per item: the C library's bulk copy beats any
 * chunking here, and the hash then streams the fresh copy once. */
static void assemble(const tg__plan *p, uint8_t *out, tg__header *h) {
  size_t span = (size_t)tg__meta_span(p->meta_len);
  memcpy(out, p->meta, p->meta_len);
  memset(out + p->meta_len, 0, span - p->meta_len);
  uint8_t *pay = out + span;
  size_t end = 0;
  for (size_t i = 0; i < p->nitems; i++) {
    const tg__pitem *it = &p->items[i];
    memset(pay + end, 0, it->off - end);
    memcpy(pay + it->off, it->data, it->len);
    end = it->off + it->len;
  }
  *h = (tg__header){.version = TG_FORMAT_VERSION,
                    .meta_len = p->meta_len,
                    .payload_len = p->payload_len,
                    .stored_len = span + p->payload_len,
                    .meta_hash = tg__xxh3_bulk(p->meta, p->meta_len),
                    .payload_hash = tg__xxh3_bulk(pay, p->payload_len)};
}

static int compress_body(const uint8_t *body, tg__header *h, int level,
                         void **out, size_t *len, tg_error *err) {
  size_t body_len = (size_t)h->stored_len;
  size_t bound = ZSTD_compressBound(body_len);
  uint8_t *tmp = tg__malloc(bound);
  ZSTD_CCtx *cctx = ZSTD_createCCtx();
  if (!tmp || !cctx) {
    tg__free(tmp);
    ZSTD_freeCCtx(cctx);
    return tg__error_set(err, TG_ENOMEM, "out of memory while compressing");
  }
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);
  size_t c = ZSTD_compress2(cctx, tmp, bound, body, body_len);
  ZSTD_freeCCtx(cctx);
  if (ZSTD_isError(c)) {
    tg__free(tmp);
    return tg__error_set(err, TG_ECOMPRESS, "zstd compression failed: %s",
                         ZSTD_getErrorName(c));
  }
  /* Copy to an exact-size buffer: the bound can be far larger. */
  uint8_t *buf = tg__aligned_alloc(TG__ALIGN, TG_HEADER_SIZE + c);
  if (!buf) {
    tg__free(tmp);
    return tg__error_set(err, TG_ENOMEM, "out of memory while compressing");
  }
  memcpy(buf + TG_HEADER_SIZE, tmp, c);
  tg__free(tmp);
  h->flags = TG__FLAG_ZSTD;
  h->stored_len = c;
  tg__header_write(buf, h);
  *out = buf;
  *len = TG_HEADER_SIZE + c;
  return TG_OK;
}

int tg_encode(const tg_value *v, const tg_encode_opts *opts, void **out,
              size_t *len, tg_error *err) {
  if (out) *out = NULL;
  if (len) *len = 0;
  if (!out || !len) return tg__error_set(err, TG_EINVAL, "out and len are required");
  int level, rc = tg__encode_opts_level(opts, &level, err);
  if (rc != TG_OK) return rc;
  tg__plan p;
  if ((rc = tg__plan_build(v, &p, err)) != TG_OK) return rc;
  size_t body_len = (size_t)tg__meta_span(p.meta_len) + p.payload_len;
  uint8_t *buf = tg__big_alloc(TG_HEADER_SIZE + body_len);
  if (!buf) {
    tg__plan_free(&p);
    return tg__error_set(err, TG_ENOMEM, "out of memory for %zu encoded bytes",
                         TG_HEADER_SIZE + body_len);
  }
  tg__header h;
  assemble(&p, buf + TG_HEADER_SIZE, &h);
  tg__plan_free(&p);
  if (level) {
    rc = compress_body(buf + TG_HEADER_SIZE, &h, level, out, len, err);
    tg__free(buf);
    return rc;
  }
  tg__header_write(buf, &h);
  *out = buf;
  *len = TG_HEADER_SIZE + body_len;
  return TG_OK;
}
