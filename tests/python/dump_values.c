/* tests/python/dump_values.c: write one dump file per case into DIR with
 * tg_dump(), for the Python reader's test (test_tgraph_files.py builds
 * the same values and compares them exactly). Every value type and every
 * dtype, both list encodings, inline and payload bytes, empty and 0-d
 * arrays, a large array and a zstd-compressed file.
 *
 *   dump_values DIR
 *
 * Exits 0 when every file was written, else 1 with the reason. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tgraph.h>

static const char *dir;
static int failures;

static void dump(const char *name, tg_value *v, int compress) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s.tgv", dir, name);
  tg_encode_opts o = {TG_ENCODE_OPTS_V1, compress, 0};
  tg_error err;
  tg_error_clear(&err);
  if (v == NULL) {
    fprintf(stderr, "dump_values: %s: out of memory\n", name);
    failures++;
  } else if (tg_dump(v, path, &o, &err) != TG_OK) {
    fprintf(stderr, "dump_values: %s: %s\n", path, err.msg);
    failures++;
  }
  tg_value_unref(v);
}

/* A [2, 3] array of dtype dt holding the six values at src. */
static tg_value *array6(tg_dtype dt, const void *src, size_t itemsize) {
  int64_t shape[2] = {2, 3};
  tg_value *a = tg_ndarray_new(dt, 2, shape);
  if (a != NULL) memcpy(tg_ndarray_data_mut(a), src, 6 * itemsize);
  return a;
}

/* {"bool": ..., "i8": ..., ..., "f64": ...}: each dtype's extremes and a
 * few ordinary values (the test script lists the same ones). */
static tg_value *every_dtype(void) {
  const uint8_t b[6] = {1, 0, 1, 1, 0, 0};
  const int8_t i8[6] = {INT8_MIN, INT8_MAX, 0, 1, -1, 42};
  const int16_t i16[6] = {INT16_MIN, INT16_MAX, 0, 1, -1, 42};
  const int32_t i32[6] = {INT32_MIN, INT32_MAX, 0, 1, -1, 42};
  const int64_t i64[6] = {INT64_MIN, INT64_MAX, 0, 1, -1, 42};
  const uint8_t u8[6] = {0, UINT8_MAX, 1, 2, 3, 42};
  const uint16_t u16[6] = {0, UINT16_MAX, 1, 2, 3, 42};
  const uint32_t u32[6] = {0, UINT32_MAX, 1, 2, 3, 42};
  const uint64_t u64[6] = {0, UINT64_MAX, 1, 2, 3, 42};
  const float f32[6] = {0.5f, -1.25f, INFINITY, -INFINITY, NAN, -0.0f};
  const double f64[6] = {0.1, -1e300, INFINITY, -INFINITY, NAN, -0.0};
  tg_value *m = tg_map_new(11);
  struct { const char *name; tg_dtype dt; const void *p; size_t size; } t[] = {
      {"bool", TG_DT_BOOL, b, 1},   {"i8", TG_DT_I8, i8, 1},
      {"i16", TG_DT_I16, i16, 2},   {"i32", TG_DT_I32, i32, 4},
      {"i64", TG_DT_I64, i64, 8},   {"u8", TG_DT_U8, u8, 1},
      {"u16", TG_DT_U16, u16, 2},   {"u32", TG_DT_U32, u32, 4},
      {"u64", TG_DT_U64, u64, 8},   {"f32", TG_DT_F32, f32, 4},
      {"f64", TG_DT_F64, f64, 8}};
  for (size_t i = 0; m != NULL && i < sizeof t / sizeof t[0]; i++)
    if (tg_map_put_c(m, t[i].name, array6(t[i].dt, t[i].p, t[i].size)) != TG_OK) {
      tg_value_unref(m);
      m = NULL;
    }
  return m;
}

/* [0, 3] i32 (no payload), 0-d f64 (one item), [2, 0, 4] u16. */
static tg_value *odd_shapes(void) {
  int64_t empty[2] = {0, 3}, none[3] = {2, 0, 4};
  tg_value *scalar = tg_ndarray_new(TG_DT_F64, 0, NULL);
  if (scalar != NULL) *(double *)tg_ndarray_data_mut(scalar) = 2.5;
  return tg_list_of(3, tg_ndarray_new(TG_DT_I32, 2, empty), scalar,
                    tg_ndarray_new(TG_DT_U16, 3, none));
}

/* Bytes 0..n-1 of the pattern (i * 7) & 0xff. */
static tg_value *pattern_bytes(size_t n) {
  unsigned char *p = malloc(n ? n : 1);
  if (p == NULL) return NULL;
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 7);
  tg_value *v = tg_bytes(p, n);
  free(p);
  return v;
}

/* f64 [n]: item i is i * 0.5. */
static tg_value *ramp(size_t n) {
  int64_t shape[1] = {(int64_t)n};
  tg_value *a = tg_ndarray_new(TG_DT_F64, 1, shape);
  for (size_t i = 0; a != NULL && i < n; i++)
    ((double *)tg_ndarray_data_mut(a))[i] = (double)i * 0.5;
  return a;
}

static tg_value *nested_map(void) {
  tg_value *m = tg_map_new(6), *inner = tg_map_new(1);
  if (m == NULL || inner == NULL ||
      tg_map_put_c(inner, "deep", tg_list_of(2, tg_list_alloc(0), tg_map_new(0))) != TG_OK ||
      tg_map_put_c(m, "z", tg_int(1)) != TG_OK ||
      tg_map_put_c(m, "a", tg_list_of(2, tg_str_c("x"), tg_null())) != TG_OK ||
      tg_map_put_c(m, "", tg_bool(false)) != TG_OK ||
      tg_map_put(m, "nul\0key", 7, tg_bool(true)) != TG_OK ||
      tg_map_put_c(m, "\xc3\xa9t\xc3\xa9", tg_float(-2.0)) != TG_OK ||
      tg_map_put_c(m, "inner", inner) != TG_OK) {
    tg_value_unref(m);
    return NULL;
  }
  return m;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: dump_values DIR\n");
    return 2;
  }
  dir = argv[1];
  dump("null", tg_null(), 0);
  dump("true", tg_bool(true), 0);
  dump("int", tg_int(INT64_MIN), 0);
  dump("float", tg_float(0.1), 0);
  dump("str", tg_str("h\xc3\xa9llo\0w\xc3\xb6rld \xf0\x9f\x98\x80", 18), 0);
  dump("scalars",
       tg_list_of(17, tg_null(), tg_bool(false), tg_bool(true), tg_int(0),
                  tg_int(-1), tg_int(INT64_MIN), tg_int(INT64_MAX),
                  tg_float(1.5), tg_float(-0.0), tg_float(INFINITY),
                  tg_float(-INFINITY), tg_float(NAN), tg_float(5e-324),
                  tg_str_c(""), tg_str_c("\xe2\x82\xac uro"), tg_bytes("", 0),
                  pattern_bytes(300)),
       0);
  dump("int_list", tg_list_of(5, tg_int(1), tg_int(-2), tg_int(INT64_MAX),
                              tg_int(INT64_MIN), tg_int(0)), 0);
  dump("empty_list", tg_list_alloc(0), 0);
  dump("empty_map", tg_map_new(0), 0);
  dump("map", nested_map(), 0);
  dump("bytes_big", pattern_bytes(10000), 0);
  dump("dtypes", every_dtype(), 0);
  dump("shapes", odd_shapes(), 0);
  dump("big", ramp((size_t)1 << 21), 0);
  tg_value *deep = tg_int(1);
  for (int i = 0; deep != NULL && i < 512; i++) deep = tg_list_of(1, deep);
  dump("deep", deep, 0);
  dump("compressed", tg_list_of(3, nested_map(), every_dtype(), ramp(100000)), 3);
  return failures ? 1 : 0;
}
