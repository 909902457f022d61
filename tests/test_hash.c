/* tests/test_hash.c: canonical value hashing. Golden digests are pinned
 * twice: by XXH3-128 over the byte stream value.h documents, built here by
 * hand, and by hard-coded hex, so a change to either the spec or the code
 * fails. Then properties: key order, int/float distinctions, immediate vs
 * boxed ints, streaming in pieces, inputs larger than the hasher's buffer,
 * and random values against an independent stream builder. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "gen_values.h"
#include "tgraph/value.h"
#include "value/hash_internal.h"

/* ---- a hand-built canonical byte stream ----------------------------------- */

typedef struct sbuf {
  unsigned char *p;
  size_t n, cap;
} sbuf;

static void sb_put(sbuf *s, const void *d, size_t n) {
  if (s->n + n > s->cap) {
    size_t cap = s->cap ? s->cap : 64;
    while (cap < s->n + n) cap *= 2;
    s->p = realloc(s->p, cap);
    cr_assert_not_null(s->p);
    s->cap = cap;
  }
  if (n) memcpy(s->p + s->n, d, n);
  s->n += n;
}

static void sb_u8(sbuf *s, unsigned b) {
  unsigned char c = (unsigned char)b;
  sb_put(s, &c, 1);
}

/* Little-endian by construction, whatever the host. */
static void sb_u64(sbuf *s, uint64_t x) {
  unsigned char b[8];
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)(x >> (8 * i));
  sb_put(s, b, 8);
}

static void sb_int(sbuf *s, int64_t i) {
  sb_u8(s, 0x03);
  sb_u64(s, (uint64_t)i);
}

static void sb_float_bits(sbuf *s, uint64_t bits) {
  sb_u8(s, 0x04);
  sb_u64(s, bits);
}

static void sb_text(sbuf *s, unsigned tag, const void *d, size_t n) {
  sb_u8(s, tag);
  sb_u64(s, n);
  sb_put(s, d, n);
}

/* A map entry's key: u64 length and bytes (the value follows). */
static void sb_key(sbuf *s, const char *k, size_t n) {
  sb_u64(s, n);
  sb_put(s, k, n);
}

static void hex128(XXH128_hash_t r, char out[33]) {
  snprintf(out, 33, "%016" PRIx64 "%016" PRIx64, r.high64, r.low64);
}

static void digest_hex(tg_digest d, char out[33]) {
  snprintf(out, 33, "%016" PRIx64 "%016" PRIx64, d.hi, d.lo);
}

static bool digest_is_stream(tg_digest d, const sbuf *s) {
  XXH128_hash_t r = XXH3_128bits(s->p, s->n);
  return d.lo == r.low64 && d.hi == r.high64;
}

/* The spec digest (stream), the code's digest (v) and the pinned hex must
 * all agree. Takes v and frees s. */
static void check_golden(const char *what, tg_value *v, sbuf *s,
                         const char *hex) {
  char spec[33], got[33], got2[33];
  cr_assert_not_null(v, "%s: value not built", what);
  hex128(XXH3_128bits(s->p, s->n), spec);
  tg_digest d = tg_value_hash(v);
  digest_hex(d, got);
  tg_digest_hex(d, got2);
  cr_expect_str_eq(spec, hex, "%s: spec stream hashes to %s, pinned %s", what,
                   spec, hex);
  cr_expect_str_eq(got, hex, "%s: tg_value_hash gives %s, pinned %s", what, got,
                   hex);
  cr_expect_str_eq(got2, got, "%s: tg_digest_hex %s vs %s", what, got2, got);
  tg_value_unref(v);
  free(s->p);
}

static double bits_double(uint64_t bits) {
  double d;
  memcpy(&d, &bits, 8);
  return d;
}

/* ---- golden vectors --------------------------------------------------------- */

Test(hash, golden_scalars) {
  sbuf s = {0};
  sb_u8(&s, 0x00);
  check_golden("null", tg_null(), &s, "a6cd5e9392000f6ac44bdff4074eecdb");
  s = (sbuf){0};
  sb_u8(&s, 0x01);
  check_golden("false", tg_bool(false), &s, "51025a4491835505e12ef9d2eb86ceeb");
  s = (sbuf){0};
  sb_u8(&s, 0x02);
  check_golden("true", tg_bool(true), &s, "e3ab152fcb1762bfc9f42e6c9e93dfff");
}

Test(hash, golden_ints) {
  static const struct {
    int64_t i;
    const char *hex;
  } cases[] = {
      {0, "7af663c80eb713021750123014926432"},
      {-1, "898750b570916159e4d51cd9260f75f3"},
      {INT64_MIN, "82fb17e32ee9980baf7dfe47ad0a0688"},
      {INT64_MAX, "5c0ed57f51c41950b0938bdb5defae3e"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    sbuf s = {0};
    sb_int(&s, cases[k].i);
    char what[64];
    snprintf(what, sizeof what, "int %" PRId64, cases[k].i);
    check_golden(what, tg_int(cases[k].i), &s, cases[k].hex);
  }
}

Test(hash, golden_floats) {
  static const struct {
    uint64_t bits;
    const char *hex;
  } cases[] = {
      {UINT64_C(0x3ff8000000000000), "f209aa0cecfcc2ea0da1b0663d7ff7db"},  /* 1.5 */
      {UINT64_C(0x8000000000000000), "192019e88cabf30ba7016a4e9d3cb1e9"},  /* -0.0 */
      {UINT64_C(0x0000000000000000), "334b47f318706e33ef6fa53f5b034ee4"},   /* 0.0 */
      {UINT64_C(0x7ff8000000000000), "67a5306e01baab09ab53fd909f1a6483"}, /* NaN */
  };
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    sbuf s = {0};
    sb_float_bits(&s, cases[k].bits);
    char what[64];
    snprintf(what, sizeof what, "float bits %016" PRIx64, cases[k].bits);
    check_golden(what, tg_float(bits_double(cases[k].bits)), &s, cases[k].hex);
  }
}

Test(hash, golden_nan_payloads_are_one_nan) {
  static const uint64_t nans[] = {
      UINT64_C(0x7ff0000000000001), /* signalling, payload 1 */
      UINT64_C(0xfff8000000000123), /* negative quiet, payload */
      UINT64_C(0x7fffffffffffffff),
  };
  for (size_t k = 0; k < sizeof nans / sizeof *nans; k++) {
    sbuf s = {0};
    sb_float_bits(&s, UINT64_C(0x7ff8000000000000));
    check_golden("NaN payload", tg_float(bits_double(nans[k])), &s, "67a5306e01baab09ab53fd909f1a6483");
  }
}

Test(hash, golden_strings_and_bytes) {
  sbuf s = {0};
  sb_text(&s, 0x05, "", 0);
  check_golden("empty str", tg_str("", 0), &s, "6ae09fc4628ce3470c66fa5ab7facd44");
  s = (sbuf){0};
  sb_text(&s, 0x05, "h\xc3\xa9llo", 6);
  check_golden("str h\u00e9llo", tg_str_c("h\xc3\xa9llo"), &s, "ed29f1b934889210c4efeb4f6a2f134b");
  s = (sbuf){0};
  sb_text(&s, 0x06, "a\0b", 3);
  check_golden("bytes a\\0b", tg_bytes("a\0b", 3), &s, "e90e8f1e1f541426778fd88f5e5ef666");
}

Test(hash, golden_arrays) {
  static const double f[6] = {1, 2, 3, 4, 5, 6.5};
  const int64_t shape[2] = {2, 3};
  sbuf s = {0};
  sb_u8(&s, 0x08);
  sb_u8(&s, 11); /* f64 */
  sb_u8(&s, 2);
  sb_u64(&s, 2);
  sb_u64(&s, 3);
  for (int i = 0; i < 6; i++) {
    uint64_t b;
    memcpy(&b, &f[i], 8);
    sb_u64(&s, b);
  }
  check_golden("f64 2x3", tg_ndarray_copy(TG_DT_F64, 2, shape, f), &s,
               "96da02a09a477aa57383159fe4713f00");

  static const unsigned char bools[3] = {1, 0, 1};
  const int64_t n3 = 3;
  s = (sbuf){0};
  sb_u8(&s, 0x08);
  sb_u8(&s, 1); /* bool */
  sb_u8(&s, 1);
  sb_u64(&s, 3);
  sb_put(&s, bools, 3);
  check_golden("bool [3]", tg_ndarray_copy(TG_DT_BOOL, 1, &n3, bools), &s,
               "70c7684096d0009e6e07e3cd7177eebd");
}

Test(hash, golden_lists) {
  sbuf s = {0};
  sb_u8(&s, 0x09);
  sb_u64(&s, 0);
  check_golden("[]", tg_list_of(0), &s, "eeaf872341dd2b5d00f7c61a09e461b6");

  /* [1, ["a", null]] */
  s = (sbuf){0};
  sb_u8(&s, 0x09);
  sb_u64(&s, 2);
  sb_int(&s, 1);
  sb_u8(&s, 0x09);
  sb_u64(&s, 2);
  sb_text(&s, 0x05, "a", 1);
  sb_u8(&s, 0x00);
  check_golden("nested list",
               tg_list_of(2, tg_int(1), tg_list_of(2, tg_str_c("a"), tg_null())),
               &s, "1f56ad9040512d82b03b631ea16f6d8d");
}

Test(hash, golden_map) {
  /* {"b": 1, "a": [true, null]}: entries hashed as "a" then "b". */
  tg_value *m = tg_map_new(0);
  cr_assert_eq(tg_map_put_c(m, "b", tg_int(1)), TG_OK);
  cr_assert_eq(tg_map_put_c(m, "a", tg_list_of(2, tg_bool(true), tg_null())),
               TG_OK);
  sbuf s = {0};
  sb_u8(&s, 0x0B);
  sb_u64(&s, 2);
  sb_key(&s, "a", 1);
  sb_u8(&s, 0x09);
  sb_u64(&s, 2);
  sb_u8(&s, 0x02);
  sb_u8(&s, 0x00);
  sb_key(&s, "b", 1);
  sb_int(&s, 1);
  check_golden("map", m, &s, "e02dbffd09e4114533840fd41495d9f6");
}

static void ref_stream(sbuf *s, const tg_value *v); /* spec, by hand */

/* ---- properties ----------------------------------------------------------------- */

static bool same_hash(const tg_value *a, const tg_value *b) {
  return tg_digest_equal(tg_value_hash(a), tg_value_hash(b));
}

typedef struct key {
  const char *k;
  size_t n;
} key;

Test(hash, map_key_order_is_bytewise_prefix_first) {
  /* Sorted: a proper prefix first (also with NUL bytes, which zero padding
   * must not confuse), bytes unsigned (UTF-8 lead bytes above ASCII), long
   * keys that agree on their first 8 bytes. */
  static const key sorted[] = {
      {"", 0},          {"a", 1},          {"a\0", 2},
      {"a\0\0", 3},     {"ab", 2},         {"abcdefgh", 8},
      {"abcdefghX", 9}, {"abcdefghY", 9},  {"abcdefghY\0", 10},
      {"b", 1},         {"z", 1},          {"\xc3\xa9", 2},
  };
  static const int insert[] = {9, 11, 4, 2, 7, 0, 10, 3, 8, 6, 1, 5};
  enum { N = sizeof sorted / sizeof *sorted };
  tg_value *m = tg_map_new(0);
  for (int i = 0; i < N; i++) {
    const key *k = &sorted[insert[i]];
    cr_assert_eq(tg_map_put(m, k->k, k->n, tg_int(insert[i])), TG_OK);
  }
  cr_assert_eq(tg_map_len(m), (size_t)N);
  sbuf s = {0};
  sb_u8(&s, 0x0B);
  sb_u64(&s, N);
  for (int j = 0; j < N; j++) {
    sb_key(&s, sorted[j].k, sorted[j].n);
    sb_int(&s, j);
  }
  cr_expect(digest_is_stream(tg_value_hash(m), &s));
  tg_value_unref(m);
  free(s.p);
}

/* A map of n entries "k<i>" -> i, inserted in the order perm gives. */
static tg_value *numbered_map(size_t n, const size_t *perm) {
  tg_value *m = tg_map_new(0);
  for (size_t j = 0; j < n; j++) {
    char key[32];
    snprintf(key, sizeof key, "k%zu", perm[j]);
    cr_assert_eq(tg_map_put_c(m, key, tg_int((int64_t)perm[j])), TG_OK);
  }
  return m;
}

Test(hash, map_insertion_order_does_not_matter) {
  /* Up to 32 entries sort on the stack; more take the allocated path. */
  static const size_t sizes[] = {2, 5, 32, 33, 64, 300};
  uint64_t rng = 42;
  for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
    size_t n = sizes[k];
    size_t *fwd = malloc(n * sizeof *fwd), *shuf = malloc(n * sizeof *shuf);
    for (size_t i = 0; i < n; i++) fwd[i] = shuf[i] = i;
    for (size_t i = n - 1; i > 0; i--) {
      size_t j = (size_t)tg_test_below(&rng, i + 1), t = shuf[i];
      shuf[i] = shuf[j];
      shuf[j] = t;
    }
    tg_value *a = numbered_map(n, fwd), *b = numbered_map(n, shuf);
    cr_expect(same_hash(a, b), "map of %zu entries", n);
    sbuf s = {0};
    ref_stream(&s, b);
    cr_expect(digest_is_stream(tg_value_hash(b), &s), "map of %zu vs spec", n);
    free(s.p);
    cr_expect(tg_value_equal(a, b));
    tg_value_unref(a);
    tg_value_unref(b);
    free(fwd);
    free(shuf);
  }
}

Test(hash, distinct_types_and_signs_differ) {
  tg_value *one = tg_int(1), *onef = tg_float(1.0);
  tg_value *z = tg_float(0.0), *mz = tg_float(-0.0);
  tg_value *str = tg_str_c("ab"), *byt = tg_bytes("ab", 2);
  tg_value *list = tg_list_of(0), *map = tg_map_new(0);
  cr_expect_not(same_hash(one, onef), "1 vs 1.0");
  cr_expect_not(same_hash(z, mz), "0.0 vs -0.0");
  cr_expect_not(same_hash(str, byt), "str vs bytes");
  cr_expect_not(same_hash(list, map), "[] vs {}");
  cr_expect_not(same_hash(tg_null(), tg_bool(false)), "null vs false");
  tg_value *vals[] = {one, onef, z, mz, str, byt, list, map};
  for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) tg_value_unref(vals[i]);
}

Test(hash, immediate_and_boxed_ints_hash_as_int64) {
  static const int64_t xs[] = {
      (INT64_C(1) << 62) - 1, (INT64_C(1) << 62), -(INT64_C(1) << 62),
      -(INT64_C(1) << 62) - 1, INT64_MIN, INT64_MAX, 7, -7,
  };
  for (size_t k = 0; k < sizeof xs / sizeof *xs; k++) {
    tg_value *v = tg_int(xs[k]);
    cr_assert_not_null(v);
    cr_assert_eq(tg_value_int(v), xs[k]);
    sbuf s = {0};
    sb_int(&s, xs[k]);
    cr_expect(digest_is_stream(tg_value_hash(v), &s), "int %" PRId64, xs[k]);
    /* Inside a list the streaming path hashes it, not the scalar shortcut. */
    tg_value *l = tg_list_of(1, v);
    sbuf ls = {0};
    sb_u8(&ls, 0x09);
    sb_u64(&ls, 1);
    sb_put(&ls, s.p, s.n);
    cr_expect(digest_is_stream(tg_value_hash(l), &ls), "[%" PRId64 "]", xs[k]);
    tg_value_unref(l);
    free(s.p);
    free(ls.p);
  }
}

static unsigned char *random_bytes(size_t n, uint64_t seed) {
  unsigned char *p = malloc(n ? n : 1);
  cr_assert_not_null(p);
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)tg_test_rand(&seed);
  return p;
}

static bool hasher_is(tg__hasher *h, XXH128_hash_t want) {
  tg_digest d = tg__hasher_final(h);
  return d.lo == want.low64 && d.hi == want.high64;
}

Test(hash, hasher_in_pieces_equals_one_shot) {
  /* Lengths around the buffer size (TG__HASHER_BUF) and well past it. */
  static const size_t lens[] = {0,    1,    9,    255,  256,  1023,
                                1024, 1025, 2047, 2048, 2049, 20000};
  static const size_t steps[] = {1, 3, 8, 100, 255, 256, 1000, 1024, 1025};
  for (size_t a = 0; a < sizeof lens / sizeof *lens; a++) {
    size_t n = lens[a];
    unsigned char *d = random_bytes(n, n + 1);
    XXH128_hash_t want = XXH3_128bits(d, n);
    tg__hasher h;
    for (size_t b = 0; b < sizeof steps / sizeof *steps; b++) {
      tg__hasher_init(&h);
      for (size_t off = 0; off < n; off += steps[b])
        tg__hasher_update(&h, d + off, n - off < steps[b] ? n - off : steps[b]);
      cr_expect(hasher_is(&h, want), "len %zu in steps of %zu", n, steps[b]);
    }
    /* Irregular pieces, small and large mixed, then reuse after final. */
    for (int round = 0; round < 2; round++) {
      uint64_t rng = 7;
      tg__hasher_init(&h);
      for (size_t off = 0; off < n;) {
        size_t step = (size_t)tg_test_below(&rng, tg_test_below(&rng, 4) ? 20 : 3000);
        if (step > n - off) step = n - off;
        tg__hasher_update(&h, d + off, step);
        off += step;
      }
      cr_expect(hasher_is(&h, want), "len %zu irregular, round %d", n, round);
    }
    free(d);
  }
}

Test(hash, hasher_mixes_bytes_and_values) {
  /* Raw bytes, then a value, then bytes again: one stream. */
  for (size_t pre = 1000; pre <= 1030; pre += 3) {
    unsigned char *d = random_bytes(pre, pre);
    tg_value *v = tg_list_of(3, tg_int(-5), tg_str_c("hello"), tg_float(2.5));
    sbuf s = {0};
    sb_put(&s, d, pre);
    sb_u8(&s, 0x09);
    sb_u64(&s, 3);
    sb_int(&s, -5);
    sb_text(&s, 0x05, "hello", 5);
    sb_float_bits(&s, UINT64_C(0x4004000000000000));
    sb_put(&s, "tail", 4);
    tg__hasher h;
    tg__hasher_init(&h);
    tg__hasher_update(&h, d, pre);
    tg__hasher_value(&h, v);
    tg__hasher_update(&h, "tail", 4);
    cr_expect(hasher_is(&h, XXH3_128bits(s.p, s.n)), "prefix %zu", pre);
    tg_value_unref(v);
    free(s.p);
    free(d);
  }
}

Test(hash, large_string_and_bytes) {
  size_t n = 1 << 20;
  char *t = malloc(n);
  for (size_t i = 0; i < n; i++) t[i] = (char)('a' + i % 26);
  tg_value *str = tg_str(t, n), *byt = tg_bytes(t, n);
  sbuf s = {0};
  sb_text(&s, 0x05, t, n);
  cr_expect(digest_is_stream(tg_value_hash(str), &s));
  s.p[0] = 0x06;
  cr_expect(digest_is_stream(tg_value_hash(byt), &s));
  tg_value_unref(str);
  tg_value_unref(byt);
  free(s.p);
  free(t);
}

Test(hash, large_list_of_ints) {
  size_t n = 10000;
  tg_value *l = tg_list_alloc(n);
  sbuf s = {0};
  sb_u8(&s, 0x09);
  sb_u64(&s, n);
  uint64_t rng = 3;
  for (size_t i = 0; i < n; i++) {
    int64_t x = tg_test_random_int(&rng);
    cr_assert_eq(tg_list_init_item(l, i, tg_int(x)), TG_OK);
    sb_int(&s, x);
  }
  cr_expect(digest_is_stream(tg_value_hash(l), &s));
  tg_value_unref(l);
  free(s.p);
}

Test(hash, large_array) {
  const int64_t shape[2] = {3, 100000};
  tg_value *a = tg_ndarray_new(TG_DT_F32, 2, shape);
  cr_assert_not_null(a);
  float *f = tg_ndarray_data_mut(a);
  for (size_t i = 0; i < 300000; i++) f[i] = (float)i * 0.25f;
  sbuf s = {0};
  sb_u8(&s, 0x08);
  sb_u8(&s, 10); /* f32 */
  sb_u8(&s, 2);
  sb_u64(&s, 3);
  sb_u64(&s, 100000);
  sb_put(&s, f, 300000 * sizeof(float));
  cr_expect(digest_is_stream(tg_value_hash(a), &s));
  tg_value_unref(a);
  free(s.p);
}

/* ---- random values against an independent stream builder ---------------- */

static int ref_key_cmp(const tg_value *m, size_t a, size_t b) {
  size_t la, lb;
  const char *ka = tg_map_key_at(m, a, &la), *kb = tg_map_key_at(m, b, &lb);
  int c = memcmp(ka, kb, la < lb ? la : lb);
  return c ? c : (la > lb) - (la < lb);
}

static void ref_map(sbuf *s, const tg_value *m) {
  size_t n = tg_map_len(m);
  size_t *ix = malloc((n ? n : 1) * sizeof *ix);
  for (size_t i = 0; i < n; i++) ix[i] = i;
  for (size_t i = 0; i < n; i++) /* selection sort: obviously right */
    for (size_t j = i + 1; j < n; j++)
      if (ref_key_cmp(m, ix[j], ix[i]) < 0) {
        size_t t = ix[i];
        ix[i] = ix[j];
        ix[j] = t;
      }
  sb_u8(s, 0x0B);
  sb_u64(s, n);
  for (size_t i = 0; i < n; i++) {
    size_t kl;
    const char *k = tg_map_key_at(m, ix[i], &kl);
    sb_key(s, k, kl);
    ref_stream(s, tg_map_value_at(m, ix[i]));
  }
  free(ix);
}

static void ref_stream(sbuf *s, const tg_value *v) {
  size_t n;
  switch (tg_value_type(v)) {
    case TG_NULL: sb_u8(s, 0x00); break;
    case TG_BOOL: sb_u8(s, tg_value_bool(v) ? 0x02 : 0x01); break;
    case TG_INT: sb_int(s, tg_value_int(v)); break;
    case TG_FLOAT: {
      double d = tg_value_float(v);
      uint64_t b;
      memcpy(&b, &d, 8);
      sb_float_bits(s, isnan(d) ? UINT64_C(0x7ff8000000000000) : b);
      break;
    }
    case TG_STR: {
      const char *p = tg_str_data(v, &n);
      sb_text(s, 0x05, p, n);
      break;
    }
    case TG_BYTES: {
      const void *p = tg_bytes_data(v, &n);
      sb_text(s, 0x06, p, n);
      break;
    }
    case TG_NDARRAY:
      sb_u8(s, 0x08);
      sb_u8(s, (unsigned)tg_ndarray_dtype(v));
      sb_u8(s, (unsigned)tg_ndarray_ndim(v));
      for (int i = 0; i < tg_ndarray_ndim(v); i++)
        sb_u64(s, (uint64_t)tg_ndarray_shape(v)[i]);
      sb_put(s, tg_ndarray_data(v), tg_ndarray_nbytes(v));
      break;
    case TG_LIST:
      sb_u8(s, 0x09);
      sb_u64(s, tg_list_len(v));
      for (size_t i = 0; i < tg_list_len(v); i++) ref_stream(s, tg_list_get(v, i));
      break;
    case TG_MAP: ref_map(s, v); break;
  }
}

Test(hash, random_values_match_spec_and_equality) {
  tg_value *prev = NULL;
  for (uint64_t seed = 1; seed <= 400; seed++) {
    uint64_t r1 = seed, r2 = seed;
    tg_value *a = tg_test_random_value(&r1, 4), *b = tg_test_random_value(&r2, 4);
    cr_assert(a && b);
    tg_digest da = tg_value_hash(a);
    cr_expect(tg_digest_equal(da, tg_value_hash(b)), "seed %" PRIu64, seed);
    sbuf s = {0};
    ref_stream(&s, a);
    cr_expect(digest_is_stream(da, &s), "seed %" PRIu64 " vs spec", seed);
    free(s.p);
    if (prev) /* equal values hash equal; unequal ones (here) do not */
      cr_expect_eq(tg_value_equal(prev, a), same_hash(prev, a),
                   "seed %" PRIu64 " vs previous", seed);
    tg_value_unref(prev);
    tg_value_unref(b);
    prev = a;
  }
  tg_value_unref(prev);
}

Test(hash, deep_nesting) {
  /* TG_DEPTH_MAX levels alternating lists and maps stay within the stack. */
  tg_value *v = tg_int(1);
  for (int d = 0; d < TG_DEPTH_MAX; d++) {
    if (d % 2) {
      tg_value *m = tg_map_new(1);
      cr_assert_eq(tg_map_put_c(m, "k", v), TG_OK);
      v = m;
    } else {
      v = tg_list_of(1, v);
    }
    cr_assert_not_null(v, "depth %d", d);
  }
  sbuf s = {0};
  ref_stream(&s, v);
  cr_expect(digest_is_stream(tg_value_hash(v), &s));
  cr_expect_eq(s.n, (size_t)(TG_DEPTH_MAX / 2) * (9 + 9 + 8 + 1) + 9);
  tg_value_unref(v);
  free(s.p);
}
