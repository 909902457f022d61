/* lib/wire/buf.h: growable write buffers and bounds-checked read
 * cursors for the worker protocol's binary frames (LEB128 varints,
 * length-counted strings).
 *
 * A write buffer remembers running out of memory (`oom`) instead of
 * failing each call, so a message is built with plain calls and checked
 * once. A read cursor treats its bytes as hostile: reading past the end,
 * an overlong varint or a string longer than its limit sets `bad`, after
 * which every read returns 0 / NULL; the caller checks `bad` once.
 *
 * Thread safety: a buffer or cursor belongs to one thread.
 */
#ifndef TG_WIRE_BUF_H
#define TG_WIRE_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"

typedef struct tg__wbuf {
  uint8_t *p;
  size_t len, cap;
  bool oom;
} tg__wbuf;

void tg__wbuf_free(tg__wbuf *b);
/* Make room for n more bytes; false (and oom set) when memory runs out. */
bool tg__wbuf_grow(tg__wbuf *b, size_t n);

/* Room for n more bytes (for writes of known size, or a read into
 * p + len): false when memory runs out. */
static inline bool tg__wbuf_reserve(tg__wbuf *b, size_t n) {
  return TG__LIKELY(b->cap - b->len >= n) || tg__wbuf_grow(b, n);
}

static inline void tg__wbuf_reset(tg__wbuf *b) {
  b->len = 0;
  b->oom = false;
}

static inline void tg__wbuf_bytes(tg__wbuf *b, const void *p, size_t n) {
  if (n && (b->cap - b->len >= n || tg__wbuf_grow(b, n))) {
    memcpy(b->p + b->len, p, n);
    b->len += n;
  }
}

static inline void tg__wbuf_u8(tg__wbuf *b, uint8_t v) {
  if (b->cap > b->len || tg__wbuf_grow(b, 1)) b->p[b->len++] = v;
}

static inline void tg__wbuf_varint(tg__wbuf *b, uint64_t u) {
  if (b->cap - b->len < 10 && !tg__wbuf_grow(b, 10)) return;
  while (u >= 0x80) {
    b->p[b->len++] = (uint8_t)(u | 0x80);
    u >>= 7;
  }
  b->p[b->len++] = (uint8_t)u;
}

/* A varint into room reserved before (tg__wbuf_reserve, 10 bytes per
 * varint): no check per field of a record of known fields. */
static inline void tg__wbuf_varint_in(tg__wbuf *b, uint64_t u) {
  while (u >= 0x80) {
    b->p[b->len++] = (uint8_t)(u | 0x80);
    u >>= 7;
  }
  b->p[b->len++] = (uint8_t)u;
}

static inline void tg__wbuf_svarint(tg__wbuf *b, int64_t i) {
  tg__wbuf_varint(b, ((uint64_t)i << 1) ^ (uint64_t)(i >> 63));
}

/* A string: varint length, then the bytes (no NUL). */
static inline void tg__wbuf_str(tg__wbuf *b, const char *s, size_t n) {
  tg__wbuf_varint(b, n);
  tg__wbuf_bytes(b, s, n);
}
static inline void tg__wbuf_cstr(tg__wbuf *b, const char *s) {
  tg__wbuf_str(b, s ? s : "", s ? strlen(s) : 0);
}

typedef struct tg__rbuf {
  const uint8_t *p;
  size_t len, pos;
  bool bad;
} tg__rbuf;

static inline void tg__rbuf_init(tg__rbuf *r, const void *p, size_t len) {
  r->p = p;
  r->len = len;
  r->pos = 0;
  r->bad = false;
}

static inline bool tg__rbuf_end(const tg__rbuf *r) { return r->pos >= r->len; }

static inline uint8_t tg__rbuf_u8(tg__rbuf *r) {
  if (r->bad || r->pos >= r->len) {
    r->bad = true;
    return 0;
  }
  return r->p[r->pos++];
}

/* The general case of tg__rbuf_varint (any length, every check). */
uint64_t tg__rbuf_varint_slow(tg__rbuf *r);

/* A varint. Most are one to three bytes (counts and flags; wire ids,
 * object ids and times in microseconds, several in every record): those
 * are read inline, longer ones go the checked way. */
static inline uint64_t tg__rbuf_varint(tg__rbuf *r) {
  if (TG__LIKELY(!r->bad && r->len - r->pos >= 3)) {
    const uint8_t *p = r->p + r->pos;
    if (p[0] < 0x80) {
      r->pos += 1;
      return p[0];
    }
    if (p[1] < 0x80) {
      r->pos += 2;
      return (uint64_t)(p[0] & 0x7f) | (uint64_t)p[1] << 7;
    }
    if (p[2] < 0x80) {
      r->pos += 3;
      return (uint64_t)(p[0] & 0x7f) | (uint64_t)(p[1] & 0x7f) << 7 | (uint64_t)p[2] << 14;
    }
  }
  return tg__rbuf_varint_slow(r);
}

static inline int64_t tg__rbuf_svarint(tg__rbuf *r) {
  uint64_t u = tg__rbuf_varint(r);
  return (int64_t)((u >> 1) ^ (~(u & 1) + 1));
}

/* A varint that must not exceed max (else bad). */
static inline uint64_t tg__rbuf_count(tg__rbuf *r, uint64_t max) {
  uint64_t u = tg__rbuf_varint(r);
  if (u > max) {
    r->bad = true;
    return 0;
  }
  return u;
}

/* n raw bytes, borrowed from the cursor's memory; NULL when bad. */
const uint8_t *tg__rbuf_bytes(tg__rbuf *r, size_t n);
/* A string of at most max bytes: borrowed pointer (not NUL-terminated) and
 * its length in *len; NULL when bad. */
const char *tg__rbuf_str(tg__rbuf *r, size_t max, size_t *len);
/* The same, copied into buf (size >= max + 1) with a NUL; false when bad
 * or when the string holds a NUL byte or is not UTF-8. */
bool tg__rbuf_cstr(tg__rbuf *r, char *buf, size_t max);

#endif /* TG_WIRE_BUF_H */
