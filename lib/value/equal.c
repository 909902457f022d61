/* lib/value/equal.c: deep equality of values, consistent with the canonical
 * hash (see tg_value_equal in value.h). */
#include <string.h>

#include "value_internal.h"

/* Float bits with every NaN folded into one, as the hash does. */
static uint64_t canon_bits(double d) {
  uint64_t u;
  if (d != d) return UINT64_C(0x7ff8000000000000);
  memcpy(&u, &d, sizeof u);
  return u;
}

static bool equal_at(const tg_value *a, const tg_value *b, unsigned level);

static bool blob_equal(const tg_value *a, const tg_value *b) {
  const tg__blob *x = (const tg__blob *)a, *y = (const tg__blob *)b;
  return x->len == y->len && (x->len == 0 || memcmp(x->data, y->data, x->len) == 0);
}

static bool array_equal(const tg_value *a, const tg_value *b) {
  const tg__array *x = (const tg__array *)a, *y = (const tg__array *)b;
  if (x->dtype != y->dtype || x->ndim != y->ndim || x->nbytes != y->nbytes) return false;
  if (x->ndim && memcmp(x->shape, y->shape, x->ndim * sizeof *x->shape) != 0) return false;
  return x->nbytes == 0 || memcmp(x->data, y->data, x->nbytes) == 0;
}

static bool list_equal(const tg_value *a, const tg_value *b, unsigned level) {
  const tg__list *x = (const tg__list *)a, *y = (const tg__list *)b;
  if (x->len != y->len) return false;
  for (size_t i = 0; i < x->len; i++)
    if (!equal_at(x->items[i], y->items[i], level + 1)) return false;
  return true;
}

/* Same keys with equal values, in any order. Keys are unique within a map,
 * so equal lengths and every key of a found in b make a bijection. */
static bool map_equal(const tg_value *a, const tg_value *b, unsigned level) {
  const tg__map *x = (const tg__map *)a, *y = (const tg__map *)b;
  if (x->len != y->len) return false;
  for (size_t i = 0; i < x->len; i++) {
    const tg__map_entry *e = &x->entries[i], *f = &y->entries[i];
    const char *key = x->keys + e->key_off;
    const tg_value *other;
    /* Maps built in the same order are common: try the same position
     * before the hashed lookup. */
    if (f->key_hash == e->key_hash && f->key_len == e->key_len &&
        memcmp(y->keys + f->key_off, key, e->key_len) == 0)
      other = f->val;
    else
      other = tg_map_get(b, key, e->key_len);
    if (!other || !equal_at(e->val, other, level + 1)) return false;
  }
  return true;
}

static bool equal_at(const tg_value *a, const tg_value *b, unsigned level) {
  if (a == b) return true; /* also NaN and -0.0: same object, same value */
  if (!a || !b) return false;
  /* Values nest at most TG_DEPTH_MAX levels by construction. */
  if (TG_NEVER(level > TG_DEPTH_MAX)) return false;
  tg_type t = tg_value_type(a);
  if (t != tg_value_type(b)) return false;
  switch (t) {
    case TG_NULL:
      return true;
    case TG_BOOL:
      return tg_value_bool(a) == tg_value_bool(b);
    case TG_INT: /* an int is boxed only outside the immediate range */
      return tg_value_int(a) == tg_value_int(b);
    case TG_FLOAT:
      return canon_bits(((const tg__float *)a)->d) == canon_bits(((const tg__float *)b)->d);
    case TG_STR:
    case TG_BYTES:
      return blob_equal(a, b);
    case TG_NDARRAY:
      return array_equal(a, b);
    case TG_LIST:
      return list_equal(a, b, level);
    case TG_MAP:
      return map_equal(a, b, level);
  }
  return false;
}

bool tg_value_equal(const tg_value *a, const tg_value *b) {
  return equal_at(a, b, 0);
}
