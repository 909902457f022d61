/* lib/serial/decode.c: tgraph binary format -> value. The input is hostile:
 * every length is checked against the bytes left before anything is
 * allocated, nesting is bounded, and each failure names what is wrong and
 * the byte offset (counted from the start of the encoding; for compressed
 * input, as if it were not compressed). */
#include <inttypes.h>
#include <stdio.h>
#include <zstd.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "serial/format.h"

/* Arrays at least this large are copied into huge-page backed memory. */
#define BIG_COPY ((size_t)1 << 20)

/* Release of buffers the decoder and loader allocate. */
void tg__release_free(void *ctx, void *data) {
  (void)ctx;
  tg__free(data);
}

/* ---- header -------------------------------------------------------------- */

static int check_sizes(const tg__header *h, size_t len, tg_error *err) {
  if (h->meta_len == 0)
    return tg__error_set_at(err, TG_EFORMAT, 8, "meta section is empty");
  if (h->meta_len > UINT64_MAX - TG__ALIGN ||
      h->payload_len > UINT64_MAX - tg__meta_span(h->meta_len) ||
      tg__meta_span(h->meta_len) + h->payload_len > SIZE_MAX / 2)
    return tg__error_set_at(err, TG_EFORMAT, 8,
                            "meta length %" PRIu64 " and payload length %" PRIu64
                            " overflow",
                            h->meta_len, h->payload_len);
  uint64_t body = tg__meta_span(h->meta_len) + h->payload_len;
  if (h->stored_len != len - TG_HEADER_SIZE)
    return tg__error_set_at(err, TG_EFORMAT, 24,
                            "header declares %" PRIu64
                            " stored bytes but %zu follow it",
                            h->stored_len, len - TG_HEADER_SIZE);
  if (!(h->flags & TG__FLAG_ZSTD)) {
    if (h->stored_len != body)
      return tg__error_set_at(err, TG_EFORMAT, 24,
                              "stored length %" PRIu64 " is not meta %" PRIu64
                              " + padding + payload %" PRIu64,
                              h->stored_len, h->meta_len, h->payload_len);
    return TG_OK;
  }
  if (body > TG__BODY_MAX)
    return tg__error_set_at(err, TG_ELIMIT, 8,
                            "compressed body declares %" PRIu64
                            " bytes, more than the %" PRIu64 " allowed",
                            body, TG__BODY_MAX);
  if (body / TG__ZSTD_MAX_RATIO > h->stored_len)
    return tg__error_set_at(err, TG_EFORMAT, 8,
                            "compressed body declares %" PRIu64
                            " bytes, more than zstd can expand %" PRIu64
                            " bytes to",
                            body, h->stored_len);
  return TG_OK;
}

int tg__header_read(const uint8_t *buf, size_t len, tg__header *h, tg_error *err) {
  if (len < TG_HEADER_SIZE)
    return tg__error_set(err, TG_EFORMAT,
                         "input of %zu bytes is shorter than the %d-byte header",
                         len, TG_HEADER_SIZE);
  if (memcmp(buf, TG__MAGIC, 4) != 0)
    return tg__error_set_at(err, TG_EFORMAT, 0,
                            "bad magic %02x %02x %02x %02x, not a tgraph encoding",
                            buf[0], buf[1], buf[2], buf[3]);
  memcpy(&h->version, buf + 4, 2);
  memcpy(&h->flags, buf + 6, 2);
  if (h->version != TG_FORMAT_VERSION)
    return tg__error_set_at(err, TG_EVERSION, 4,
                            "format version %u is not supported (this build reads %d)",
                            h->version, TG_FORMAT_VERSION);
  uint64_t stored = tg__get_u64(buf + 48), computed = XXH3_64bits(buf, 48);
  if (stored != computed)
    return tg__error_set_at(err, TG_ECHECKSUM, 48,
                            "header checksum %016" PRIx64
                            " does not match the computed %016" PRIx64,
                            stored, computed);
  if (h->flags & ~TG__FLAGS_KNOWN)
    return tg__error_set_at(err, TG_EFORMAT, 6, "unknown flags 0x%04x", h->flags);
  if (tg__get_u64(buf + 56) != 0)
    return tg__error_set_at(err, TG_EFORMAT, 56, "reserved header field is not zero");
  h->meta_len = tg__get_u64(buf + 8);
  h->payload_len = tg__get_u64(buf + 16);
  h->stored_len = tg__get_u64(buf + 24);
  h->meta_hash = tg__get_u64(buf + 32);
  h->payload_hash = tg__get_u64(buf + 40);
  return check_sizes(h, len, err);
}

/* ---- the meta section ---------------------------------------------------- */

typedef struct dec {
  const uint8_t *m;   /* meta section */
  size_t len, pos;    /* its length, the read position */
  const uint8_t *pay; /* payload section */
  size_t pay_len;
  tg__region *region; /* owner of pay to borrow from; NULL: copy */
  tg_error *err;
} dec;

#define AT(p) ((size_t)TG_HEADER_SIZE + (p))
#define LEFT(d) ((d)->len - (d)->pos)

static int fail(dec *d, int code, size_t pos, const char *fmt, ...) TG__PRINTF(4, 5);
static int fail(dec *d, int code, size_t pos, const char *fmt, ...) {
  if (!d->err) return code;
  char msg[200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return tg__error_set_at(d->err, code, AT(pos), "%s", msg);
}

static int varint_slow(dec *d, uint64_t *u, const char *what) {
  size_t start = d->pos;
  uint64_t v = 0;
  for (unsigned i = 0;; i++) {
    if (d->pos >= d->len)
      return fail(d, TG_EFORMAT, start, "%s: varint runs past the end of the meta section", what);
    uint8_t b = d->m[d->pos++];
    if (i == TG__VARINT_MAX - 1 && b >= 0x80)
      return fail(d, TG_EFORMAT, start, "%s: varint longer than %d bytes", what, TG__VARINT_MAX);
    if (i == TG__VARINT_MAX - 1 && b > 1)
      return fail(d, TG_EFORMAT, start, "%s: varint overflows 64 bits", what);
    v |= (uint64_t)(b & 0x7F) << (7 * i);
    if (b < 0x80) {
      if (b == 0 && i > 0)
        return fail(d, TG_EFORMAT, start, "%s: varint is not minimal", what);
      *u = v;
      return TG_OK;
    }
  }
}

/* A well-formed varint at p, which has at least TG__VARINT_MAX bytes:
 * no bounds checks. False for anything unusual; varint_slow() then says
 * what is wrong. */
static inline bool varint_fast(const uint8_t *p, uint64_t *u, size_t *n) {
  uint64_t v = 0;
  for (unsigned i = 0; i < TG__VARINT_MAX; i++) {
    uint8_t b = p[i];
    v |= (uint64_t)(b & 0x7F) << (7 * i);
    if (b < 0x80) {
      if ((b == 0 && i > 0) || (i == TG__VARINT_MAX - 1 && b > 1)) return false;
      *u = v;
      *n = i + 1;
      return true;
    }
  }
  return false;
}

static inline int rd_varint(dec *d, uint64_t *u, const char *what) {
  if (TG__LIKELY(d->pos < d->len && d->m[d->pos] < 0x80)) {
    *u = d->m[d->pos++];
    return TG_OK;
  }
  size_t n;
  if (TG__LIKELY(LEFT(d) >= TG__VARINT_MAX && varint_fast(d->m + d->pos, u, &n))) {
    d->pos += n;
    return TG_OK;
  }
  return varint_slow(d, u, what);
}

static tg_value *int_value(int64_t i) {
  return TG__LIKELY(tg__imm_fits(i)) ? tg__imm_make(i) : tg_int(i);
}

static int dec_value(dec *d, unsigned level, tg_value **out);

static int dec_int(dec *d, tg_value **out) {
  uint64_t u;
  int rc = rd_varint(d, &u, "int");
  if (rc != TG_OK) return rc;
  *out = int_value(tg__unzigzag(u));
  return *out ? TG_OK : TG_ENOMEM;
}

static int dec_float(dec *d, tg_value **out) {
  if (LEFT(d) < 8)
    return fail(d, TG_EFORMAT, d->pos, "float needs 8 bytes, %zu left", LEFT(d));
  double x;
  memcpy(&x, d->m + d->pos, 8);
  d->pos += 8;
  *out = tg_float(x);
  return *out ? TG_OK : TG_ENOMEM;
}

static int dec_inline_blob(dec *d, tg_type type, tg_value **out) {
  const char *what = type == TG_STR ? "str" : "bytes";
  size_t at = d->pos;
  uint64_t n;
  int rc = rd_varint(d, &n, what);
  if (rc != TG_OK) return rc;
  if (n > LEFT(d))
    return fail(d, TG_EFORMAT, at, "%s length %" PRIu64 " exceeds the %zu bytes left",
                what, n, LEFT(d));
  const char *s = (const char *)d->m + d->pos;
  if (type == TG_STR && !tg__utf8_valid(s, (size_t)n))
    return fail(d, TG_EFORMAT, d->pos, "str of %" PRIu64 " bytes is not valid UTF-8", n);
  tg__blob *b = tg__blob_new_raw(type, (size_t)n);
  if (!b) return TG_ENOMEM;
  if (n) memcpy(b->buf, s, (size_t)n);
  d->pos += (size_t)n;
  *out = &b->h;
  return TG_OK;
}

/* Read a payload offset for an item of n bytes and check it. */
static int rd_payload(dec *d, uint64_t n, const char *what, size_t *off) {
  size_t at = d->pos;
  uint64_t o;
  int rc = rd_varint(d, &o, what);
  if (rc != TG_OK) return rc;
  if (o % TG__ALIGN)
    return fail(d, TG_EFORMAT, at, "%s payload offset %" PRIu64 " is not a multiple of %d",
                what, o, TG__ALIGN);
  if (o > d->pay_len || n > d->pay_len - o)
    return fail(d, TG_EFORMAT, at,
                "%s of %" PRIu64 " bytes at payload offset %" PRIu64
                " runs past the %zu-byte payload",
                what, n, o, d->pay_len);
  *off = (size_t)o;
  return TG_OK;
}

static int dec_bytes_ext(dec *d, tg_value **out) {
  uint64_t n;
  size_t off;
  int rc = rd_varint(d, &n, "bytes");
  if (rc != TG_OK || (rc = rd_payload(d, n, "bytes", &off)) != TG_OK) return rc;
  const char *data = (const char *)d->pay + off;
  if (d->region) {
    *out = tg__blob_borrow(TG_BYTES, data, (size_t)n, d->region);
    return *out ? TG_OK : TG_ENOMEM;
  }
  tg__blob *b = tg__blob_new_raw(TG_BYTES, (size_t)n);
  if (!b) return TG_ENOMEM;
  memcpy(b->buf, data, (size_t)n);
  *out = &b->h;
  return TG_OK;
}

/* An owned copy of an array's data. */
static tg_value *array_copy(tg_dtype dt, int ndim, const int64_t *shape,
                            const void *data, size_t nbytes) {
  if (nbytes < BIG_COPY) return tg_ndarray_copy(dt, ndim, shape, data);
  void *mem = tg__big_alloc(nbytes);
  if (!mem) return NULL;
  memcpy(mem, data, nbytes);
  tg__region *r = tg__region_new(mem, tg__release_free, NULL);
  if (!r) return NULL;
  tg_value *v = tg__array_borrow(dt, ndim, shape, mem, r);
  tg__region_unref(r); /* the array holds the only reference, or none */
  return v;
}

static int dec_array(dec *d, tg_value **out) {
  size_t at = d->pos;
  if (LEFT(d) < 2)
    return fail(d, TG_EFORMAT, at, "ndarray needs dtype and ndim, %zu bytes left", LEFT(d));
  uint8_t dt = d->m[d->pos], ndim = d->m[d->pos + 1];
  if (!tg_dtype_size((tg_dtype)dt))
    return fail(d, TG_EFORMAT, at, "unknown dtype %u", dt);
  if (ndim > TG_NDIM_MAX)
    return fail(d, TG_EFORMAT, at + 1, "ndim %u exceeds %d", ndim, TG_NDIM_MAX);
  d->pos += 2;
  int64_t shape[TG_NDIM_MAX];
  for (int i = 0; i < ndim; i++) {
    size_t dat = d->pos;
    uint64_t dim;
    int rc = rd_varint(d, &dim, "ndarray dimension");
    if (rc != TG_OK) return rc;
    if (dim > INT64_MAX)
      return fail(d, TG_EFORMAT, dat, "ndarray dimension %" PRIu64 " is too large", dim);
    shape[i] = (int64_t)dim;
  }
  size_t size, nbytes, off;
  if (!tg__shape_size((tg_dtype)dt, ndim, shape, &size, &nbytes))
    return fail(d, TG_EFORMAT, at, "ndarray shape overflows");
  int rc = rd_payload(d, nbytes, "ndarray", &off);
  if (rc != TG_OK) return rc;
  void *data = (void *)(d->pay + off);
  /* Empty arrays borrow nothing, so they do not keep a mapping alive. */
  *out = d->region && nbytes ? tg__array_borrow((tg_dtype)dt, ndim, shape, data, d->region)
                             : array_copy((tg_dtype)dt, ndim, shape, data, nbytes);
  return *out ? TG_OK : TG_ENOMEM;
}

/* Count of a container whose items need at least `each` bytes apiece. */
static int rd_count(dec *d, unsigned level, uint64_t each, const char *what,
                    size_t *n) {
  size_t at = d->pos - 1;
  if (level + 1 > TG_DEPTH_MAX)
    return fail(d, TG_EDEPTH, at, "lists and maps nested deeper than %d levels",
                TG_DEPTH_MAX);
  at = d->pos;
  uint64_t c;
  int rc = rd_varint(d, &c, what);
  if (rc != TG_OK) return rc;
  if (c > LEFT(d) / each)
    return fail(d, TG_EFORMAT, at, "%s count %" PRIu64 " exceeds the %zu bytes left",
                what, c, LEFT(d));
  *n = (size_t)c;
  return TG_OK;
}

static int dec_int_list(dec *d, unsigned level, tg_value **out) {
  size_t n;
  int rc = rd_count(d, level, 1, "int-list", &n);
  if (rc != TG_OK) return rc;
  tg__list *l = tg__list_new_raw(n);
  if (!l) return TG_ENOMEM;
  tg_value **items = l->items;
  for (size_t i = 0; i < n; i++) {
    uint64_t u;
    if ((rc = rd_varint(d, &u, "int")) != TG_OK) {
      tg_value_unref(&l->h);
      return rc;
    }
    if (!(items[i] = int_value(tg__unzigzag(u)))) {
      tg_value_unref(&l->h);
      return TG_ENOMEM;
    }
  }
  *out = &l->h;
  return TG_OK;
}

static int dec_list(dec *d, unsigned level, tg_value **out) {
  size_t n;
  int rc = rd_count(d, level, 1, "list", &n);
  if (rc != TG_OK) return rc;
  tg__list *l = tg__list_new_raw(n);
  if (!l) return TG_ENOMEM;
  unsigned depth = 0;
  for (size_t i = 0; i < n; i++) {
    if ((rc = dec_value(d, level + 1, &l->items[i])) != TG_OK) {
      tg_value_unref(&l->h);
      return rc;
    }
    if (tg__depth(l->items[i]) > depth) depth = tg__depth(l->items[i]);
  }
  l->h.depth = (uint16_t)(depth + 1);
  *out = &l->h;
  return TG_OK;
}

/* One map entry: key then value, put into m. */
static int dec_entry(dec *d, unsigned level, tg_value *m) {
  size_t at = d->pos;
  uint64_t klen;
  int rc = rd_varint(d, &klen, "map key length");
  if (rc != TG_OK) return rc;
  if (klen > LEFT(d))
    return fail(d, TG_EFORMAT, at, "map key length %" PRIu64 " exceeds the %zu bytes left",
                klen, LEFT(d));
  if (klen > UINT32_MAX)
    return fail(d, TG_EFORMAT, at, "map key of %" PRIu64 " bytes is too long", klen);
  const char *key = (const char *)d->m + d->pos;
  size_t key_at = d->pos;
  d->pos += (size_t)klen;
  tg_value *v;
  if ((rc = dec_value(d, level + 1, &v)) != TG_OK) return rc;
  size_t before = tg_map_len(m);
  /* tg_map_put checks the key's UTF-8 (the only EINVAL left here). */
  if ((rc = tg_map_put(m, key, (size_t)klen, v)) == TG_EINVAL)
    return fail(d, TG_EFORMAT, key_at, "map key is not valid UTF-8");
  if (rc != TG_OK) return rc;
  if (tg_map_len(m) == before) {
    int shown = klen > 40 ? 40 : (int)klen;
    return fail(d, TG_EFORMAT, at, "duplicate map key \"%.*s\"%s", shown, key,
                klen > 40 ? "..." : "");
  }
  return TG_OK;
}

static int dec_map(dec *d, unsigned level, tg_value **out) {
  size_t n;
  int rc = rd_count(d, level, 2, "map", &n);
  if (rc != TG_OK) return rc;
  tg_value *m = tg_map_new(n);
  if (!m) return TG_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    if ((rc = dec_entry(d, level, m)) != TG_OK) {
      tg_value_unref(m);
      return rc;
    }
  }
  *out = m;
  return TG_OK;
}

static int dec_value(dec *d, unsigned level, tg_value **out) {
  if (d->pos >= d->len)
    return fail(d, TG_EFORMAT, d->pos, "meta section ends where a value should start");
  uint8_t tag = d->m[d->pos++];
  switch (tag) {
    case TG__TAG_NULL: *out = tg_null(); return TG_OK;
    case TG__TAG_FALSE: *out = tg_bool(false); return TG_OK;
    case TG__TAG_TRUE: *out = tg_bool(true); return TG_OK;
    case TG__TAG_INT: return dec_int(d, out);
    case TG__TAG_FLOAT: return dec_float(d, out);
    case TG__TAG_STR: return dec_inline_blob(d, TG_STR, out);
    case TG__TAG_BYTES: return dec_inline_blob(d, TG_BYTES, out);
    case TG__TAG_BYTES_EXT: return dec_bytes_ext(d, out);
    case TG__TAG_NDARRAY: return dec_array(d, out);
    case TG__TAG_LIST: return dec_list(d, level, out);
    case TG__TAG_INT_LIST: return dec_int_list(d, level, out);
    case TG__TAG_MAP: return dec_map(d, level, out);
    default: return fail(d, TG_EFORMAT, d->pos - 1, "unknown tag 0x%02x", tag);
  }
}

/* ---- bodies -------------------------------------------------------------- */

/* Check the hashes and padding of an uncompressed body, then decode it. */
static int decode_body(const uint8_t *body, const tg__header *h, tg__region *region,
                       unsigned flags, tg_value **out, tg_error *err) {
  size_t meta_len = (size_t)h->meta_len, span = (size_t)tg__meta_span(h->meta_len);
  uint64_t mh = tg__xxh3_bulk(body, meta_len);
  if (mh != h->meta_hash)
    return tg__error_set_at(err, TG_ECHECKSUM, TG_HEADER_SIZE,
                            "meta section checksum %016" PRIx64
                            " does not match the header's %016" PRIx64,
                            mh, h->meta_hash);
  for (size_t i = meta_len; i < span; i++)
    if (body[i])
      return tg__error_set_at(err, TG_EFORMAT, AT(i),
                              "padding after the meta section is not zero");
  if (!(flags & TG__DEC_SKIP_PAYLOAD_HASH)) {
    uint64_t ph = tg__xxh3_bulk(body + span, (size_t)h->payload_len);
    if (ph != h->payload_hash)
      return tg__error_set_at(err, TG_ECHECKSUM, AT(span),
                              "payload checksum %016" PRIx64
                              " does not match the header's %016" PRIx64,
                              ph, h->payload_hash);
  }
  dec d = {.m = body, .len = meta_len, .pay = body + span,
           .pay_len = (size_t)h->payload_len, .region = region, .err = err};
  tg_value *v = NULL;
  int rc = dec_value(&d, 0, &v);
  if (rc == TG_OK && d.pos != d.len) {
    tg_value_unref(v);
    return fail(&d, TG_EFORMAT, d.pos, "%zu bytes follow the value in the meta section",
                d.len - d.pos);
  }
  if (rc == TG_ENOMEM)
    return tg__error_set_at(err, rc, AT(d.pos), "out of memory while decoding");
  if (rc == TG_OK) *out = v;
  return rc;
}

/* Decompress the body of a checked header into a new 64-aligned buffer. */
static int decompress(const uint8_t *src, const tg__header *h, uint8_t **body,
                      tg_error *err) {
  size_t stored = (size_t)h->stored_len;
  uint64_t want = tg__meta_span(h->meta_len) + h->payload_len;
  unsigned long long fcs = ZSTD_getFrameContentSize(src, stored);
  if (fcs == ZSTD_CONTENTSIZE_ERROR)
    return tg__error_set_at(err, TG_EFORMAT, TG_HEADER_SIZE, "body is not a zstd frame");
  if (fcs != want)
    return tg__error_set_at(err, TG_EFORMAT, TG_HEADER_SIZE,
                            "zstd frame holds %llu bytes but the header declares %" PRIu64,
                            fcs, want);
  size_t fsz = ZSTD_findFrameCompressedSize(src, stored);
  if (ZSTD_isError(fsz) || fsz != stored)
    return tg__error_set_at(err, TG_EFORMAT, TG_HEADER_SIZE,
                            "zstd frame does not span the %zu stored bytes", stored);
  uint8_t *buf = tg__big_alloc((size_t)want);
  if (!buf)
    return tg__error_set(err, TG_ENOMEM, "out of memory for %" PRIu64 " decompressed bytes",
                         want);
  size_t got = ZSTD_decompress(buf, (size_t)want, src, stored);
  if (ZSTD_isError(got) || got != want) {
    tg__free(buf);
    return tg__error_set_at(err, TG_EFORMAT, TG_HEADER_SIZE, "zstd: %s",
                            ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short frame");
  }
  *body = buf;
  return TG_OK;
}

int tg__decode_checked(const uint8_t *buf, const tg__header *h, tg__region *region,
                       unsigned flags, tg_value **out, tg_error *err) {
  if (!(h->flags & TG__FLAG_ZSTD))
    return decode_body(buf + TG_HEADER_SIZE, h, region, flags, out, err);
  uint8_t *body = NULL;
  int rc = decompress(buf + TG_HEADER_SIZE, h, &body, err);
  if (rc != TG_OK) return rc;
  tg__region *r = tg__region_new(body, tg__release_free, NULL);
  if (!r) return tg__error_set(err, TG_ENOMEM, "out of memory while decoding");
  rc = decode_body(body, h, r, 0, out, err);
  tg__region_unref(r);
  return rc;
}

/* ---- public entry points ------------------------------------------------- */

int tg_decode(const void *buf, size_t len, tg_value **out, tg_error *err) {
  if (out) *out = NULL;
  if (!out || (!buf && len)) return tg__error_set(err, TG_EINVAL, "out and buf are required");
  tg__header h;
  int rc = tg__header_read(buf, len, &h, err);
  if (rc != TG_OK) return rc;
  return tg__decode_checked(buf, &h, NULL, 0, out, err);
}

int tg_decode_borrow(void *buf, size_t len, tg_release_fn release, void *ctx,
                     tg_value **out, tg_error *err) {
  if (out) *out = NULL;
  tg__region *r = tg__region_new(buf, release, ctx);
  if (!r) return tg__error_set(err, TG_ENOMEM, "out of memory while decoding");
  int rc;
  tg__header h;
  if (!out || (!buf && len))
    rc = tg__error_set(err, TG_EINVAL, "out and buf are required");
  else if ((uintptr_t)buf % TG__ALIGN)
    rc = tg__error_set(err, TG_EINVAL, "buffer is not %d-byte aligned", TG__ALIGN);
  else if ((rc = tg__header_read(buf, len, &h, err)) == TG_OK)
    rc = tg__decode_checked(buf, &h, r, 0, out, err);
  tg__region_unref(r); /* values that borrowed buf hold their own references */
  return rc;
}
