/* lib/wire/buf.c: the slow paths of the protocol's write buffers and
 * read cursors (growth, varints, strings). */
#include "wire/buf.h"

void tg__wbuf_free(tg__wbuf *b) {
  tg__free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
  b->oom = false;
}

bool tg__wbuf_grow(tg__wbuf *b, size_t n) {
  if (b->oom) return false;
  if (b->cap - b->len >= n) return true;
  if (n > SIZE_MAX / 2 - b->len) { /* a size off the wire: no overflow */
    b->oom = true;
    return false;
  }
  size_t cap = b->cap ? b->cap * 2 : 256;
  if (cap < b->len + n) cap = b->len + n;
  uint8_t *p = tg__realloc(b->p, cap);
  if (!p) {
    b->oom = true;
    return false;
  }
  b->p = p;
  b->cap = cap;
  return true;
}

uint64_t tg__rbuf_varint_slow(tg__rbuf *r) {
  if (r->bad || r->pos >= r->len) {
    r->bad = true;
    return 0;
  }
  /* One bounds check for the whole varint, not one per byte: two- and
   * three-byte ones (wire ids, times in microseconds) are in every record. */
  const uint8_t *p = r->p + r->pos;
  size_t avail = r->len - r->pos < 10 ? r->len - r->pos : 10;
  uint64_t u = 0;
  for (size_t i = 0; i < avail; i++) {
    if (i == 9 && p[i] > 1) break; /* more than 64 bits */
    u |= (uint64_t)(p[i] & 0x7f) << (7 * i);
    if (!(p[i] & 0x80)) {
      r->pos += i + 1;
      return u;
    }
  }
  r->bad = true;
  return 0;
}

const uint8_t *tg__rbuf_bytes(tg__rbuf *r, size_t n) {
  if (r->bad || r->len - r->pos < n) {
    r->bad = true;
    return NULL;
  }
  const uint8_t *p = r->p + r->pos;
  r->pos += n;
  return p;
}

const char *tg__rbuf_str(tg__rbuf *r, size_t max, size_t *len) {
  size_t n = (size_t)tg__rbuf_count(r, max);
  const uint8_t *p = tg__rbuf_bytes(r, n);
  *len = p ? n : 0;
  return (const char *)p;
}

bool tg__rbuf_cstr(tg__rbuf *r, char *buf, size_t max) {
  size_t n;
  const char *s = tg__rbuf_str(r, max, &n);
  buf[0] = '\0';
  if (!s) return false;
  if (memchr(s, 0, n) || !tg__utf8_valid(s, n)) {
    r->bad = true;
    return false;
  }
  memcpy(buf, s, n);
  buf[n] = '\0';
  return true;
}
