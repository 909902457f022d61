/* lib/memo/key.c: Merkle keys of graph nodes; the byte stream is
 * documented in key.h. */
#include <string.h>

#include <xxhash.h>

#include "key.h"
#include "value/hash_internal.h"

static void put_u64(tg__hasher *h, uint64_t v) { tg__hasher_update(h, &v, 8); }

static void put_str(tg__hasher *h, const char *s, size_t n) {
  put_u64(h, n);
  tg__hasher_update(h, s, n);
}

static void put_digest(tg__hasher *h, tg_digest d) {
  put_u64(h, d.lo);
  put_u64(h, d.hi);
}

static void put_arg(tg__hasher *h, const tg__key_arg *a) {
  uint8_t kind = (uint8_t)a->kind;
  tg__hasher_update(h, &kind, 1);
  put_digest(h, a->digest);
  if (a->kind == TG__KEY_ITEM) put_u64(h, (uint64_t)a->index);
  if (a->kind == TG__KEY_MAPKEY) put_str(h, a->key ? a->key : "", a->key ? a->key_len : 0);
}

/* ---- small streams: built in one buffer, hashed in one call ---------------- */

#define SMALL 512 /* bytes: the stream of a call with a dozen arguments */

static size_t stream_len(size_t nlen, size_t vlen, const tg__key_arg *args, size_t nargs) {
  size_t len = 6 + 8 + nlen + 8 + vlen + 16 + 8;
  for (size_t i = 0; i < nargs && len <= SMALL; i++) {
    len += 17;
    if (args[i].kind == TG__KEY_ITEM) len += 8;
    if (args[i].kind == TG__KEY_MAPKEY) len += 8 + (args[i].key ? args[i].key_len : 0);
  }
  return len;
}

static unsigned char *w_bytes(unsigned char *p, const void *d, size_t n) {
  if (n) memcpy(p, d, n);
  return p + n;
}

static unsigned char *w_u64(unsigned char *p, uint64_t v) { return w_bytes(p, &v, 8); }

static unsigned char *w_str(unsigned char *p, const char *s, size_t n) {
  return w_bytes(w_u64(p, n), s, n);
}

/* The same bytes as the streaming path below (len <= SMALL). */
static tg_digest small_key(const tg__key_fn *fn, size_t nlen, const char *version,
                           size_t vlen, const tg__key_arg *args, size_t nargs, size_t len) {
  unsigned char buf[SMALL], *p = buf;
  tg_digest plugin = fn->plugin ? *fn->plugin : (tg_digest){0, 0};
  p = w_bytes(p, "tgkey1", 6);
  p = w_str(p, fn->name, nlen);
  p = w_str(p, version, vlen);
  p = w_u64(w_u64(p, plugin.lo), plugin.hi);
  p = w_u64(p, nargs);
  for (size_t i = 0; i < nargs; i++) {
    const tg__key_arg *a = &args[i];
    *p++ = (unsigned char)a->kind;
    p = w_u64(w_u64(p, a->digest.lo), a->digest.hi);
    if (a->kind == TG__KEY_ITEM) p = w_u64(p, (uint64_t)a->index);
    if (a->kind == TG__KEY_MAPKEY) p = w_str(p, a->key ? a->key : "", a->key ? a->key_len : 0);
  }
  assert((size_t)(p - buf) == len);
  XXH128_hash_t h = XXH3_128bits(buf, len);
  return (tg_digest){h.low64, h.high64};
}

tg_digest tg__merkle_key(const tg__key_fn *fn, const tg__key_arg *args,
                         size_t nargs) {
  tg__hasher h;
  const char *version = fn->version ? fn->version : "";
  size_t nlen = strlen(fn->name), vlen = strlen(version);
  size_t len = stream_len(nlen, vlen, args, nargs);
  if (len <= SMALL) return small_key(fn, nlen, version, vlen, args, nargs, len);
  tg__hasher_init(&h);
  tg__hasher_update(&h, "tgkey1", 6);
  put_str(&h, fn->name, strlen(fn->name));
  put_str(&h, version, strlen(version));
  put_digest(&h, fn->plugin ? *fn->plugin : (tg_digest){0, 0});
  put_u64(&h, nargs);
  for (size_t i = 0; i < nargs; i++) put_arg(&h, &args[i]);
  return tg__hasher_final(&h);
}
