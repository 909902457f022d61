/* lib/cache/key.c: Merkle keys of graph nodes; the byte stream is
 * documented in key.h. */
#include <string.h>

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

tg_digest tg__merkle_key(const tg__key_fn *fn, const tg__key_arg *args,
                         size_t nargs) {
  tg__hasher h;
  const char *version = fn->version ? fn->version : "";
  tg__hasher_init(&h);
  tg__hasher_update(&h, "tgkey1", 6);
  put_str(&h, fn->name, strlen(fn->name));
  put_str(&h, version, strlen(version));
  put_digest(&h, fn->plugin ? *fn->plugin : (tg_digest){0, 0});
  put_u64(&h, nargs);
  for (size_t i = 0; i < nargs; i++) put_arg(&h, &args[i]);
  return tg__hasher_final(&h);
}
