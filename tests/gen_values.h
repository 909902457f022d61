/* tests/gen_values.h: a deterministic generator of random nested values for
 * round-trip tests (JSON, serializer, hashing). Header-only, static
 * functions, so each test program gets its own copy.
 *
 * Coverage: every type; int edges around the immediate/boxed boundary and
 * the int64 limits; floats with NaN (several payloads), +-inf, +-0.0,
 * subnormals and random bit patterns; strings with NUL, control bytes and
 * 2/3/4-byte UTF-8; bytes; arrays of every dtype with ndim 0..3 (empty
 * dims included); lists and maps (keys with NUL, "$" prefixes, UTF-8).
 *
 * The generator uses its own PRNG (splitmix64), so a seed gives the same
 * values on every machine. Values are NULL only when memory runs out.
 */
#ifndef TG_TEST_GEN_VALUES_H
#define TG_TEST_GEN_VALUES_H

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "tgraph/value.h"

static uint64_t tg_test_rand(uint64_t *state) {
  uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

/* Uniform in 0..n-1 (n > 0; the tiny modulo bias does not matter here). */
static uint64_t tg_test_below(uint64_t *state, uint64_t n) {
  return tg_test_rand(state) % n;
}

static int64_t tg_test_random_int(uint64_t *rng) {
  static const int64_t edges[] = {
      0, 1, -1, 2, -2, 127, -128, 255, 65535, INT32_MAX, INT32_MIN,
      INT64_MAX, INT64_MIN, INT64_MAX - 1, INT64_MIN + 1,
      (INT64_C(1) << 62), (INT64_C(1) << 62) - 1, (INT64_C(1) << 62) + 1,
      -(INT64_C(1) << 62), -(INT64_C(1) << 62) - 1, -(INT64_C(1) << 62) + 1,
      INT64_C(9007199254740993), /* 2^53 + 1: not exact as a double */
  };
  switch (tg_test_below(rng, 4)) {
    case 0: return edges[tg_test_below(rng, sizeof edges / sizeof *edges)];
    case 1: return (int64_t)tg_test_below(rng, 2001) - 1000;
    case 2: return (int64_t)(tg_test_rand(rng) >> tg_test_below(rng, 64));
    default: return (int64_t)tg_test_rand(rng);
  }
}

static double tg_test_bits_double(uint64_t bits) {
  double d;
  memcpy(&d, &bits, sizeof d);
  return d;
}

static double tg_test_random_double(uint64_t *rng) {
  static const uint64_t special_bits[] = {
      UINT64_C(0x7ff8000000000000), /* quiet NaN */
      UINT64_C(0xfff8000000000000), /* negative NaN */
      UINT64_C(0x7ff0000000000001), /* signalling NaN with a payload */
      UINT64_C(0x7ff0000000000000), /* +inf */
      UINT64_C(0xfff0000000000000), /* -inf */
      UINT64_C(0x0000000000000000), /* +0.0 */
      UINT64_C(0x8000000000000000), /* -0.0 */
      UINT64_C(0x0000000000000001), /* smallest subnormal */
      UINT64_C(0x000fffffffffffff), /* largest subnormal */
      UINT64_C(0x0010000000000000), /* DBL_MIN */
      UINT64_C(0x7fefffffffffffff), /* DBL_MAX */
      UINT64_C(0x3fb999999999999a), /* 0.1 */
      UINT64_C(0x3ff0000000000000), /* 1.0 */
      UINT64_C(0x4340000000000000), /* 2^53 */
  };
  switch (tg_test_below(rng, 4)) {
    case 0:
      return tg_test_bits_double(
          special_bits[tg_test_below(rng, sizeof special_bits / sizeof *special_bits)]);
    case 1: return (double)((int64_t)tg_test_below(rng, 20001) - 10000) / 8.0;
    case 2: return ((double)tg_test_rand(rng) / 18446744073709551616.0 - 0.5) *
                   pow(10.0, (double)tg_test_below(rng, 41) - 20.0);
    default: return tg_test_bits_double(tg_test_rand(rng));
  }
}

/* Append one random code point as UTF-8 to buf (room for 4 bytes). */
static size_t tg_test_put_char(uint64_t *rng, char *buf) {
  uint32_t cp;
  switch (tg_test_below(rng, 8)) {
    case 0: cp = (uint32_t)tg_test_below(rng, 0x20); break; /* control, NUL */
    case 1: cp = 0x80 + (uint32_t)tg_test_below(rng, 0x780); break;
    case 2:
      cp = 0x800 + (uint32_t)tg_test_below(rng, 0x10000 - 0x800 - 0x800);
      if (cp >= 0xD800) cp += 0x800; /* skip surrogates */
      break;
    case 3: cp = 0x10000 + (uint32_t)tg_test_below(rng, 0x100000); break;
    case 4: cp = "\"\\/$ \x7f"[tg_test_below(rng, 6)]; break;
    default: cp = 0x20 + (uint32_t)tg_test_below(rng, 0x5f); break;
  }
  unsigned char *p = (unsigned char *)buf;
  if (cp < 0x80) {
    p[0] = (unsigned char)cp;
    return 1;
  }
  if (cp < 0x800) {
    p[0] = (unsigned char)(0xC0 | (cp >> 6));
    p[1] = (unsigned char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    p[0] = (unsigned char)(0xE0 | (cp >> 12));
    p[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    p[2] = (unsigned char)(0x80 | (cp & 0x3F));
    return 3;
  }
  p[0] = (unsigned char)(0xF0 | (cp >> 18));
  p[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
  p[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
  p[3] = (unsigned char)(0x80 | (cp & 0x3F));
  return 4;
}

/* Random UTF-8 text of up to max_chars code points into buf (room for
 * 4 * max_chars bytes); returns the byte length. */
static size_t tg_test_random_text(uint64_t *rng, char *buf, size_t max_chars) {
  size_t n = (size_t)tg_test_below(rng, max_chars + 1), len = 0;
  for (size_t i = 0; i < n; i++) len += tg_test_put_char(rng, buf + len);
  return len;
}

static tg_value *tg_test_random_array(uint64_t *rng) {
  tg_dtype dt = (tg_dtype)(TG_DT_BOOL + (int)tg_test_below(rng, TG_DT_F64));
  int ndim = (int)tg_test_below(rng, 4);
  int64_t shape[3];
  for (int i = 0; i < ndim; i++)
    shape[i] = (int64_t)tg_test_below(rng, tg_test_below(rng, 8) ? 5 : 1);
  tg_value *a = tg_ndarray_new(dt, ndim, shape);
  if (!a) return NULL;
  unsigned char *p = tg_ndarray_data_mut(a);
  size_t n = tg_ndarray_size(a), es = tg_dtype_size(dt);
  for (size_t i = 0; i < n; i++) {
    unsigned char *e = p + i * es;
    if (dt == TG_DT_BOOL) {
      e[0] = (unsigned char)tg_test_below(rng, 2);
    } else if (dt == TG_DT_F64) {
      double d = tg_test_random_double(rng);
      memcpy(e, &d, 8);
    } else if (dt == TG_DT_F32) {
      float f = (float)tg_test_random_double(rng);
      if (tg_test_below(rng, 4) == 0) {
        uint32_t bits = (uint32_t)tg_test_rand(rng);
        memcpy(&f, &bits, 4);
      }
      memcpy(e, &f, 4);
    } else {
      int64_t x = tg_test_random_int(rng); /* edges, truncated to the width */
      memcpy(e, &x, es);
    }
  }
  return a;
}

static tg_value *tg_test_random_value(uint64_t *rng_state, int max_depth);

static tg_value *tg_test_random_list(uint64_t *rng, int max_depth) {
  size_t n = (size_t)tg_test_below(rng, tg_test_below(rng, 8) ? 5 : 40);
  tg_value *l = tg_list_alloc(n);
  for (size_t i = 0; l && i < n; i++) {
    if (tg_list_init_item(l, i, tg_test_random_value(rng, max_depth - 1)) != TG_OK) {
      tg_value_unref(l);
      l = NULL;
    }
  }
  return l;
}

static tg_value *tg_test_random_map(uint64_t *rng, int max_depth) {
  size_t n = (size_t)tg_test_below(rng, tg_test_below(rng, 8) ? 5 : 40);
  tg_value *m = tg_map_new(n);
  char key[4 * 8 + 2];
  for (size_t i = 0; m && i < n; i++) {
    size_t len = 0;
    if (tg_test_below(rng, 4) == 0) key[len++] = '$'; /* exercises "$map" */
    len += tg_test_random_text(rng, key + len, 8);
    /* A repeated key replaces the value: that is fine, the map stays valid. */
    if (tg_map_put(m, key, len, tg_test_random_value(rng, max_depth - 1)) != TG_OK) {
      tg_value_unref(m);
      m = NULL;
    }
  }
  return m;
}

/* A random value nesting at most max_depth lists/maps (0: no containers).
 * New reference; NULL only when out of memory. */
static tg_value *tg_test_random_value(uint64_t *rng_state, int max_depth) {
  uint64_t *rng = rng_state;
  unsigned kinds = max_depth > 0 ? 12 : 9;
  switch (tg_test_below(rng, kinds)) {
    case 0: return tg_null();
    case 1: return tg_bool(tg_test_below(rng, 2) != 0);
    case 2: return tg_int(tg_test_random_int(rng));
    case 3: return tg_float(tg_test_random_double(rng));
    case 4:
    case 5: {
      char buf[4 * 24];
      size_t len = tg_test_random_text(rng, buf, 24);
      return tg_str(buf, len);
    }
    case 6: {
      unsigned char buf[48];
      size_t len = (size_t)tg_test_below(rng, sizeof buf + 1);
      for (size_t i = 0; i < len; i++) buf[i] = (unsigned char)tg_test_rand(rng);
      return tg_bytes(buf, len);
    }
    case 7:
    case 8: return tg_test_random_array(rng);
    case 9:
    case 10: return tg_test_random_list(rng, max_depth);
    default: return tg_test_random_map(rng, max_depth);
  }
}

#endif /* TG_TEST_GEN_VALUES_H */
