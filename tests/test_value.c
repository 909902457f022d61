/* tests/test_value.c: constructors, accessors, reference counting, lists,
 * maps, the nesting limit and tg_value_equal. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tgraph/value.h"
/* White-box: the immediate-int encoding is checked at its boundary. */
#include "value/value_internal.h"

/* ---- release counting for wrapped arrays ----------------------------------- */

typedef struct counter {
  int calls;
  void *last_data;
} counter;

static void count_release(void *ctx, void *data) {
  counter *c = ctx;
  c->calls++;
  c->last_data = data;
}

static _Alignas(64) double wrap_buf[8];

/* A wrapped 1-d f64 array over wrap_buf whose release bumps c. */
static tg_value *wrapped(counter *c) {
  int64_t shape[1] = {8};
  tg_value *a = tg_ndarray_wrap(TG_DT_F64, 1, shape, wrap_buf, count_release, c);
  cr_assert_not_null(a);
  return a;
}

/* ---- scalars ----------------------------------------------------------------- */

Test(value, null_and_bool) {
  cr_assert_eq(tg_value_type(tg_null()), TG_NULL);
  cr_assert_eq(tg_value_type(tg_bool(true)), TG_BOOL);
  cr_assert_eq(tg_value_type(tg_bool(false)), TG_BOOL);
  cr_assert(tg_value_bool(tg_bool(true)));
  cr_assert_not(tg_value_bool(tg_bool(false)));
  cr_assert_not(tg_value_bool(tg_null()));
  /* Immortal: any number of unrefs is harmless. */
  for (int i = 0; i < 3; i++) {
    tg_value_unref(tg_null());
    tg_value_unref(tg_bool(true));
  }
  cr_assert_eq(tg_value_ref(tg_null()), tg_null());
  tg_value_ref(NULL);
  tg_value_unref(NULL);
}

Test(value, type_names) {
  static const char *const names[] = {"null", "bool", "int", "float", "str",
                                      "bytes", "ndarray", "list", "map"};
  for (int t = TG_NULL; t <= TG_MAP; t++) cr_assert_str_eq(tg_type_name((tg_type)t), names[t]);
  cr_assert_str_eq(tg_type_name((tg_type)9), "invalid");
  cr_assert_str_eq(tg_type_name((tg_type)-1), "invalid");
}

Test(value, int_round_trips_at_every_edge) {
  static const int64_t xs[] = {0, 1, -1, 42, -42, INT32_MAX, INT32_MIN,
                               TG__IMM_MAX, TG__IMM_MAX + 1, TG__IMM_MIN, TG__IMM_MIN - 1,
                               INT64_MAX, INT64_MAX - 1, INT64_MIN, INT64_MIN + 1};
  for (size_t i = 0; i < sizeof xs / sizeof *xs; i++) {
    tg_value *v = tg_int(xs[i]);
    cr_assert_not_null(v);
    cr_assert_eq(tg_value_type(v), TG_INT);
    cr_assert_eq(tg_value_int(v), xs[i], "%lld", (long long)xs[i]);
    cr_assert_eq(tg_value_float(v), 0.0);
    tg_value_unref(v);
  }
}

Test(value, immediate_range_is_plus_minus_two_to_the_62) {
  cr_assert_eq(TG__IMM_MAX, (INT64_C(1) << 62) - 1);
  cr_assert_eq(TG__IMM_MIN, -(INT64_C(1) << 62));
  struct { int64_t x; bool imm; } cases[] = {
      {0, true}, {-1, true}, {TG__IMM_MAX, true}, {TG__IMM_MIN, true},
      {TG__IMM_MAX + 1, false}, {TG__IMM_MIN - 1, false},
      {INT64_MAX, false}, {INT64_MIN, false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    tg_value *v = tg_int(cases[i].x);
    cr_assert_eq(tg__is_imm(v), cases[i].imm, "%lld", (long long)cases[i].x);
    tg_value_unref(v);
  }
}

Test(value, boxed_ints_compare_by_value) {
  tg_value *a = tg_int(INT64_MIN), *b = tg_int(INT64_MIN);
  cr_assert(tg_value_equal(a, b));
  tg_value *c = tg_int(TG__IMM_MAX + 1), *d = tg_int(TG__IMM_MAX);
  cr_assert_not(tg_value_equal(c, d));
  tg_value_unref(a);
  tg_value_unref(b);
  tg_value_unref(c);
  tg_value_unref(d);
}

Test(value, floats_keep_their_bits) {
  static const double xs[] = {0.0, -0.0, 1.5, -1e-310, 1.7976931348623157e308, INFINITY, -INFINITY};
  for (size_t i = 0; i < sizeof xs / sizeof *xs; i++) {
    tg_value *v = tg_float(xs[i]);
    cr_assert_eq(tg_value_type(v), TG_FLOAT);
    double d = tg_value_float(v);
    cr_assert_eq(memcmp(&d, &xs[i], sizeof d), 0);
    cr_assert_eq(tg_value_int(v), 0);
    tg_value_unref(v);
  }
  tg_value *n = tg_float(NAN);
  cr_assert(isnan(tg_value_float(n)));
  tg_value_unref(n);
}

/* ---- strings and bytes ----------------------------------------------------------- */

Test(value, str_copies_and_allows_nul) {
  char src[] = "a\0b\xc3\xa9\xf0\x9f\x98\x80";
  tg_value *s = tg_str(src, sizeof src - 1);
  cr_assert_not_null(s);
  src[0] = 'X'; /* the value has its own copy */
  size_t len = 0;
  const char *d = tg_str_data(s, &len);
  cr_assert_eq(len, 9);
  cr_assert_eq(memcmp(d, "a\0b\xc3\xa9\xf0\x9f\x98\x80", 9), 0);
  cr_assert_eq(tg_value_type(s), TG_STR);
  cr_assert_null(tg_bytes_data(s, &len));
  cr_assert_eq(len, 0);
  tg_value_unref(s);

  s = tg_str_c("hello");
  cr_assert_str_eq(tg_str_data(s, NULL), "hello");
  tg_value_unref(s);
  s = tg_str(NULL, 0);
  cr_assert_not_null(s);
  cr_assert_eq((tg_str_data(s, &len), len), 0);
  tg_value_unref(s);
  cr_assert_null(tg_str(NULL, 1));
  cr_assert_null(tg_str_c(NULL));
}

Test(value, str_rejects_invalid_utf8) {
  static const struct { const char *s; size_t n; } bad[] = {
      {"\xc0\x80", 2},             /* overlong NUL */
      {"\xc1\xbf", 2},             /* overlong 2-byte */
      {"\xe0\x80\xaf", 3},         /* overlong '/' */
      {"\xf0\x80\x80\x80", 4},     /* overlong 4-byte */
      {"\xed\xa0\x80", 3},         /* U+D800, a surrogate */
      {"\xed\xbf\xbf", 3},         /* U+DFFF */
      {"\xf4\x90\x80\x80", 4},     /* above U+10FFFF */
      {"\xf5\x80\x80\x80", 4},
      {"\xe2\x82", 2},             /* truncated */
      {"abcdefgh\xe2", 9},         /* truncated after the ASCII fast path */
      {"\x80", 1},                 /* lone continuation */
      {"\xc3\x28", 2},             /* bad continuation */
      {"\xff", 1},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    cr_assert_null(tg_str(bad[i].s, bad[i].n), "case %zu accepted", i);
  static const struct { const char *s; size_t n; } good[] = {
      {"\x7f", 1}, {"\xc2\x80", 2}, {"\xed\x9f\xbf", 3}, {"\xee\x80\x80", 3},
      {"\xef\xbf\xbf", 3}, {"\xf0\x90\x80\x80", 4}, {"\xf4\x8f\xbf\xbf", 4},
  };
  for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
    tg_value *v = tg_str(good[i].s, good[i].n);
    cr_assert_not_null(v, "case %zu rejected", i);
    tg_value_unref(v);
  }
}

Test(value, bytes_are_any_bytes) {
  unsigned char raw[256];
  for (int i = 0; i < 256; i++) raw[i] = (unsigned char)(255 - i);
  tg_value *b = tg_bytes(raw, sizeof raw);
  cr_assert_not_null(b);
  raw[0] = 0;
  size_t len;
  const unsigned char *d = tg_bytes_data(b, &len);
  cr_assert_eq(len, 256);
  cr_assert_eq(d[0], 255);
  cr_assert_eq(d[255], 0);
  cr_assert_eq(tg_value_type(b), TG_BYTES);
  cr_assert_null(tg_str_data(b, NULL));
  tg_value_unref(b);
  b = tg_bytes(NULL, 0);
  cr_assert_not_null(b);
  cr_assert_eq((tg_bytes_data(b, &len), len), 0);
  tg_value_unref(b);
  cr_assert_null(tg_bytes(NULL, 3));
}

/* ---- arrays ------------------------------------------------------------------------ */

Test(ndarray, dtype_table) {
  static const struct { tg_dtype dt; const char *name; size_t size; } t[] = {
      {TG_DT_BOOL, "bool", 1}, {TG_DT_I8, "i8", 1},   {TG_DT_I16, "i16", 2},
      {TG_DT_I32, "i32", 4},   {TG_DT_I64, "i64", 8}, {TG_DT_U8, "u8", 1},
      {TG_DT_U16, "u16", 2},   {TG_DT_U32, "u32", 4}, {TG_DT_U64, "u64", 8},
      {TG_DT_F32, "f32", 4},   {TG_DT_F64, "f64", 8},
  };
  for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
    cr_assert_str_eq(tg_dtype_name(t[i].dt), t[i].name);
    cr_assert_eq(tg_dtype_size(t[i].dt), t[i].size);
    cr_assert_eq(tg_dtype_from_name(t[i].name), t[i].dt);
  }
  cr_assert_null(tg_dtype_name((tg_dtype)0));
  cr_assert_null(tg_dtype_name((tg_dtype)12));
  cr_assert_eq(tg_dtype_size((tg_dtype)12), 0);
  cr_assert_eq(tg_dtype_from_name("f16"), 0);
  cr_assert_eq(tg_dtype_from_name("F64"), 0);
  cr_assert_eq(tg_dtype_from_name(NULL), 0);
}

Test(ndarray, new_is_zeroed_aligned_for_every_dtype) {
  int64_t shape[3] = {2, 3, 5};
  for (int dt = TG_DT_BOOL; dt <= TG_DT_F64; dt++) {
    tg_value *a = tg_ndarray_new((tg_dtype)dt, 3, shape);
    cr_assert_not_null(a);
    cr_assert_eq(tg_value_type(a), TG_NDARRAY);
    cr_assert_eq(tg_ndarray_dtype(a), (tg_dtype)dt);
    cr_assert_eq(tg_ndarray_ndim(a), 3);
    cr_assert_eq(memcmp(tg_ndarray_shape(a), shape, sizeof shape), 0);
    cr_assert_eq(tg_ndarray_size(a), 30);
    cr_assert_eq(tg_ndarray_nbytes(a), 30 * tg_dtype_size((tg_dtype)dt));
    cr_assert_eq((uintptr_t)tg_ndarray_data(a) % TG_ARRAY_ALIGN, 0);
    cr_assert_eq(tg_ndarray_data_mut(a), tg_ndarray_data(a));
    const unsigned char *p = tg_ndarray_data(a);
    for (size_t i = 0; i < tg_ndarray_nbytes(a); i++) cr_assert_eq(p[i], 0);
    tg_value_unref(a);
  }
}

Test(ndarray, copy_and_shapes) {
  int64_t shape[2] = {2, 2};
  int32_t data[4] = {1, -2, 3, -4};
  tg_value *a = tg_ndarray_copy(TG_DT_I32, 2, shape, data);
  shape[0] = 7;
  data[0] = 100;
  cr_assert_eq(tg_ndarray_shape(a)[0], 2);
  cr_assert_eq(((const int32_t *)tg_ndarray_data(a))[0], 1);
  cr_assert_eq(((const int32_t *)tg_ndarray_data(a))[3], -4);
  tg_value_unref(a);

  tg_value *s = tg_ndarray_new(TG_DT_F64, 0, NULL); /* a 0-d array: one element */
  cr_assert_eq(tg_ndarray_size(s), 1);
  cr_assert_eq(tg_ndarray_nbytes(s), 8);
  tg_value_unref(s);
  int64_t empty[3] = {4, 0, 3};
  tg_value *e = tg_ndarray_copy(TG_DT_U16, 3, empty, NULL);
  cr_assert_not_null(e);
  cr_assert_eq(tg_ndarray_size(e), 0);
  cr_assert_eq(tg_ndarray_nbytes(e), 0);
  tg_value_unref(e);
  int64_t big[TG_NDIM_MAX];
  for (int i = 0; i < TG_NDIM_MAX; i++) big[i] = 1;
  tg_value *m = tg_ndarray_new(TG_DT_U8, TG_NDIM_MAX, big);
  cr_assert_eq(tg_ndarray_ndim(m), TG_NDIM_MAX);
  tg_value_unref(m);
}

Test(ndarray, invalid_arguments) {
  int64_t shape[TG_NDIM_MAX + 1] = {2, 3};
  for (int i = 2; i <= TG_NDIM_MAX; i++) shape[i] = 1;
  cr_assert_null(tg_ndarray_new((tg_dtype)0, 1, shape));
  cr_assert_null(tg_ndarray_new((tg_dtype)12, 1, shape));
  cr_assert_null(tg_ndarray_new(TG_DT_F64, -1, shape));
  cr_assert_null(tg_ndarray_new(TG_DT_F64, TG_NDIM_MAX + 1, shape));
  cr_assert_null(tg_ndarray_new(TG_DT_F64, 2, NULL));
  int64_t neg[2] = {2, -1};
  cr_assert_null(tg_ndarray_new(TG_DT_F64, 2, neg));
  int64_t huge[2] = {INT64_C(1) << 32, INT64_C(1) << 32};
  cr_assert_null(tg_ndarray_new(TG_DT_U8, 2, huge));
  int64_t huge8[1] = {INT64_MAX / 4};
  cr_assert_null(tg_ndarray_new(TG_DT_F64, 1, huge8));
  int64_t two[1] = {2};
  cr_assert_null(tg_ndarray_copy(TG_DT_F64, 1, two, NULL));
}

Test(ndarray, accessors_on_other_types) {
  tg_value *s = tg_str_c("x");
  cr_assert_eq(tg_ndarray_dtype(s), 0);
  cr_assert_eq(tg_ndarray_ndim(s), 0);
  cr_assert_null(tg_ndarray_shape(s));
  cr_assert_eq(tg_ndarray_size(s), 0);
  cr_assert_eq(tg_ndarray_nbytes(s), 0);
  cr_assert_null(tg_ndarray_data(s));
  cr_assert_null(tg_ndarray_data_mut(s));
  cr_assert_null(tg_ndarray_data(tg_int(3)));
  cr_assert_eq(tg_list_len(s), 0);
  cr_assert_null(tg_list_get(s, 0));
  cr_assert_null(tg_list_items(s));
  cr_assert_eq(tg_map_len(s), 0);
  cr_assert_null(tg_map_get_c(s, "x"));
  cr_assert_null(tg_map_value_at(tg_int(1), 0));
  size_t kl = 5;
  cr_assert_null(tg_map_key_at(s, 0, &kl));
  cr_assert_eq(kl, 0);
  cr_assert_not(tg_value_bool(s));
  cr_assert_eq(tg_value_int(s), 0);
  tg_value_unref(s);
}

Test(ndarray, wrap_releases_once_when_last_reference_goes) {
  counter c = {0};
  tg_value *a = wrapped(&c);
  cr_assert_eq(tg_ndarray_data(a), wrap_buf); /* zero copy */
  tg_value_ref(a);
  tg_value_unref(a);
  cr_assert_eq(c.calls, 0);
  tg_value *l = tg_list_of(2, tg_value_ref(a), tg_value_ref(a));
  tg_value_unref(a);
  cr_assert_eq(c.calls, 0, "the list still holds the array");
  tg_value_unref(l);
  cr_assert_eq(c.calls, 1);
  cr_assert_eq(c.last_data, wrap_buf);
}

Test(ndarray, wrap_failure_releases_before_returning) {
  counter c = {0};
  int64_t shape[1] = {4};
  cr_assert_null(tg_ndarray_wrap(TG_DT_F64, 1, shape, (char *)wrap_buf + 8, count_release, &c));
  cr_assert_eq(c.calls, 1, "misaligned data");
  cr_assert_eq(c.last_data, (char *)wrap_buf + 8);
  cr_assert_null(tg_ndarray_wrap((tg_dtype)0, 1, shape, wrap_buf, count_release, &c));
  cr_assert_eq(c.calls, 2, "bad dtype");
  cr_assert_null(tg_ndarray_wrap(TG_DT_F64, 1, shape, NULL, count_release, &c));
  cr_assert_eq(c.calls, 3, "NULL data");
  cr_assert_null(tg_ndarray_wrap(TG_DT_F64, 1, shape, (char *)wrap_buf + 8, NULL, NULL));
  /* An empty array may have any pointer; release still runs once. */
  int64_t zero[1] = {0};
  tg_value *e = tg_ndarray_wrap(TG_DT_F64, 1, zero, NULL, count_release, &c);
  cr_assert_not_null(e);
  cr_assert_eq(c.calls, 3);
  tg_value_unref(e);
  cr_assert_eq(c.calls, 4);
}

/* ---- lists -------------------------------------------------------------------------- */

Test(list, builders) {
  tg_value *l = tg_list_of(3, tg_int(1), tg_str_c("a"), tg_null());
  cr_assert_eq(tg_value_type(l), TG_LIST);
  cr_assert_eq(tg_list_len(l), 3);
  cr_assert_eq(tg_value_int(tg_list_get(l, 0)), 1);
  cr_assert_str_eq(tg_str_data(tg_list_get(l, 1), NULL), "a");
  cr_assert_eq(tg_value_type(tg_list_items(l)[2]), TG_NULL);
  cr_assert_null(tg_list_get(l, 3));
  tg_value_unref(l);

  tg_value *items[2] = {tg_float(2.0), tg_list_of(0)};
  l = tg_list_take(2, items);
  cr_assert_eq(tg_list_len(l), 2);
  cr_assert_eq(tg_list_len(tg_list_get(l, 1)), 0);
  tg_value_unref(l);

  l = tg_list_alloc(3);
  cr_assert_eq(tg_value_type(tg_list_get(l, 2)), TG_NULL);
  cr_assert_eq(tg_list_init_item(l, 1, tg_int(5)), TG_OK);
  cr_assert_eq(tg_list_init_item(l, 1, tg_int(6)), TG_OK); /* replaces */
  cr_assert_eq(tg_value_int(tg_list_get(l, 1)), 6);
  tg_value_unref(l);

  l = tg_list_of(0);
  cr_assert_eq(tg_list_len(l), 0);
  tg_value_unref(l);
  l = tg_list_take(0, NULL);
  cr_assert_not_null(l);
  tg_value_unref(l);
}

Test(list, null_item_releases_the_others) {
  counter c = {0};
  cr_assert_null(tg_list_of(3, wrapped(&c), NULL, wrapped(&c)));
  cr_assert_eq(c.calls, 2);
  tg_value *items[3] = {wrapped(&c), NULL, wrapped(&c)};
  cr_assert_null(tg_list_take(3, items));
  cr_assert_eq(c.calls, 4);
  /* Nested calls fail as a whole. */
  cr_assert_null(tg_list_of(2, wrapped(&c), tg_list_of(1, tg_str("\xff", 1))));
  cr_assert_eq(c.calls, 5);
}

Test(list, init_item_errors_release_the_item) {
  counter c = {0};
  tg_value *l = tg_list_alloc(2);
  cr_assert_eq(tg_list_init_item(l, 2, wrapped(&c)), TG_EINVAL);
  cr_assert_eq(c.calls, 1);
  cr_assert_eq(tg_list_init_item(l, 0, NULL), TG_EINVAL);
  tg_value *notlist = tg_map_new(0);
  cr_assert_eq(tg_list_init_item(notlist, 0, wrapped(&c)), TG_EINVAL);
  cr_assert_eq(c.calls, 2);
  cr_assert_eq(tg_list_init_item(l, 0, tg_value_ref(l)), TG_EINVAL); /* no cycles */
  cr_assert_eq(tg_list_init_item(l, 1, wrapped(&c)), TG_OK);
  cr_assert_eq(c.calls, 2);
  tg_value_unref(l);
  cr_assert_eq(c.calls, 3);
  tg_value_unref(notlist);
}

/* ---- maps ----------------------------------------------------------------------------- */

Test(map, insertion_order_and_replace_in_place) {
  tg_value *m = tg_map_new(0);
  const char *keys[] = {"zeta", "alpha", "mid", "beta"};
  for (int i = 0; i < 4; i++) cr_assert_eq(tg_map_put_c(m, keys[i], tg_int(i)), TG_OK);
  cr_assert_eq(tg_map_put_c(m, "alpha", tg_str_c("new")), TG_OK);
  cr_assert_eq(tg_map_len(m), 4);
  for (size_t i = 0; i < 4; i++) {
    size_t kl;
    const char *k = tg_map_key_at(m, i, &kl);
    cr_assert_eq(kl, strlen(keys[i]));
    cr_assert_eq(memcmp(k, keys[i], kl), 0);
  }
  cr_assert_str_eq(tg_str_data(tg_map_value_at(m, 1), NULL), "new");
  cr_assert_str_eq(tg_str_data(tg_map_get_c(m, "alpha"), NULL), "new");
  cr_assert_eq(tg_value_int(tg_map_get_c(m, "beta")), 3);
  cr_assert_null(tg_map_key_at(m, 4, NULL));
  cr_assert_null(tg_map_value_at(m, 4));
  cr_assert_null(tg_map_get_c(m, "gamma"));
  cr_assert_null(tg_map_get_c(m, NULL));
  tg_value_unref(m);
}

Test(map, ten_thousand_keys) {
  tg_value *m = tg_map_new(0);
  char key[32];
  for (int i = 0; i < 10000; i++) {
    int n = snprintf(key, sizeof key, "k%d", i * 3);
    cr_assert_eq(tg_map_put(m, key, (size_t)n, tg_int(i)), TG_OK);
  }
  cr_assert_eq(tg_map_len(m), 10000);
  for (int i = 0; i < 30000; i++) {
    int n = snprintf(key, sizeof key, "k%d", i);
    tg_value *v = tg_map_get(m, key, (size_t)n);
    if (i % 3 == 0) {
      cr_assert_not_null(v, "%s missing", key);
      cr_assert_eq(tg_value_int(v), i / 3);
    } else {
      cr_assert_null(v, "%s found", key);
    }
  }
  for (size_t i = 0; i < 10000; i += 997) {
    size_t kl;
    const char *k = tg_map_key_at(m, i, &kl);
    int n = snprintf(key, sizeof key, "k%zu", i * 3);
    cr_assert_eq(kl, (size_t)n);
    cr_assert_eq(memcmp(k, key, kl), 0);
  }
  tg_value_unref(m);
}

Test(map, keys_with_nul_bytes_and_empty_keys) {
  tg_value *m = tg_map_new(4);
  cr_assert_eq(tg_map_put(m, "a\0b", 3, tg_int(1)), TG_OK);
  cr_assert_eq(tg_map_put(m, "a\0c", 3, tg_int(2)), TG_OK);
  cr_assert_eq(tg_map_put(m, "a", 1, tg_int(3)), TG_OK);
  cr_assert_eq(tg_map_put(m, "", 0, tg_int(4)), TG_OK);
  cr_assert_eq(tg_map_put(m, NULL, 0, tg_int(5)), TG_OK); /* the same empty key */
  cr_assert_eq(tg_map_len(m), 4);
  cr_assert_eq(tg_value_int(tg_map_get(m, "a\0b", 3)), 1);
  cr_assert_eq(tg_value_int(tg_map_get(m, "a\0c", 3)), 2);
  cr_assert_eq(tg_value_int(tg_map_get_c(m, "a")), 3);
  cr_assert_eq(tg_value_int(tg_map_get(m, NULL, 0)), 5);
  cr_assert_null(tg_map_get(m, "a\0", 2));
  size_t kl;
  cr_assert_eq(memcmp(tg_map_key_at(m, 1, &kl), "a\0c", 3), 0);
  cr_assert_eq(kl, 3);
  tg_value_unref(m);
}

Test(map, put_errors_release_the_value) {
  counter c = {0};
  tg_value *m = tg_map_new(0);
  cr_assert_eq(tg_map_put(m, "\xc0\x80", 2, wrapped(&c)), TG_EINVAL);
  cr_assert_eq(c.calls, 1);
  cr_assert_eq(tg_map_put_c(m, NULL, wrapped(&c)), TG_EINVAL);
  cr_assert_eq(c.calls, 2);
  cr_assert_eq(tg_map_put(m, NULL, 3, wrapped(&c)), TG_EINVAL);
  cr_assert_eq(c.calls, 3);
  cr_assert_eq(tg_map_put_c(m, "k", NULL), TG_EINVAL);
  tg_value *l = tg_list_of(0);
  cr_assert_eq(tg_map_put_c(l, "k", wrapped(&c)), TG_EINVAL);
  cr_assert_eq(c.calls, 4);
  cr_assert_eq(tg_map_put_c(m, "self", tg_value_ref(m)), TG_EINVAL);
  cr_assert_eq(tg_map_len(m), 0);
  /* Replacing releases the old value. */
  cr_assert_eq(tg_map_put_c(m, "k", wrapped(&c)), TG_OK);
  cr_assert_eq(tg_map_put_c(m, "k", tg_null()), TG_OK);
  cr_assert_eq(c.calls, 5);
  tg_value_unref(l);
  tg_value_unref(m);
}

Test(map, values_live_as_long_as_the_map) {
  counter c = {0};
  tg_value *m = tg_map_new(0);
  for (int i = 0; i < 20; i++) {
    char k[8];
    snprintf(k, sizeof k, "%d", i);
    cr_assert_eq(tg_map_put_c(m, k, wrapped(&c)), TG_OK);
  }
  tg_value *keep = tg_value_ref(m);
  tg_value_unref(m);
  cr_assert_eq(c.calls, 0);
  tg_value_unref(keep);
  cr_assert_eq(c.calls, 20);
}

/* ---- nesting limit ---------------------------------------------------------------------- */

/* A chain of n lists, innermost holding a wrapped array. */
static tg_value *nest_lists(int n, counter *c) {
  tg_value *v = wrapped(c);
  for (int i = 0; i < n && v; i++) v = tg_list_of(1, v);
  return v;
}

Test(depth, lists_up_to_the_limit) {
  counter c = {0};
  tg_value *v = nest_lists(TG_DEPTH_MAX, &c);
  cr_assert_not_null(v);
  /* One more level, by every builder. */
  cr_assert_null(tg_list_of(1, tg_value_ref(v)));
  tg_value *items[1] = {tg_value_ref(v)};
  cr_assert_null(tg_list_take(1, items));
  tg_value *l = tg_list_alloc(1);
  cr_assert_eq(tg_list_init_item(l, 0, tg_value_ref(v)), TG_EDEPTH);
  tg_value *m = tg_map_new(0);
  cr_assert_eq(tg_map_put_c(m, "k", tg_value_ref(v)), TG_EDEPTH);
  cr_assert_eq(tg_map_len(m), 0);
  tg_value_unref(l);
  tg_value_unref(m);
  cr_assert_eq(c.calls, 0);
  tg_value_unref(v); /* every failed call released its reference */
  cr_assert_eq(c.calls, 1);
  cr_assert_null(nest_lists(TG_DEPTH_MAX + 1, &c));
  cr_assert_eq(c.calls, 2);
}

Test(depth, maps_up_to_the_limit) {
  tg_value *v = tg_int(1);
  for (int i = 0; i < TG_DEPTH_MAX; i++) {
    tg_value *m = tg_map_new(1);
    cr_assert_eq(tg_map_put_c(m, "k", v), TG_OK, "level %d", i + 1);
    v = m;
  }
  tg_value *m = tg_map_new(1);
  cr_assert_eq(tg_map_put_c(m, "k", v), TG_EDEPTH);
  tg_value_unref(m);
}

/* ---- equality ------------------------------------------------------------------------------ */

static void expect_equal(tg_value *a, tg_value *b, bool want) {
  cr_assert_not_null(a);
  cr_assert_not_null(b);
  cr_assert_eq(tg_value_equal(a, b), want);
  cr_assert_eq(tg_value_equal(b, a), want);
  tg_value_unref(a);
  tg_value_unref(b);
}

static double bits(uint64_t u) {
  double d;
  memcpy(&d, &u, 8);
  return d;
}

Test(equal, scalars) {
  expect_equal(tg_null(), tg_null(), true);
  expect_equal(tg_null(), tg_bool(false), false);
  expect_equal(tg_bool(true), tg_bool(true), true);
  expect_equal(tg_bool(true), tg_bool(false), false);
  expect_equal(tg_int(0), tg_bool(false), false);
  expect_equal(tg_int(1), tg_float(1.0), false);
  expect_equal(tg_int(7), tg_int(7), true);
  expect_equal(tg_int(INT64_MAX), tg_int(INT64_MAX), true);
  expect_equal(tg_int(INT64_MAX), tg_int(INT64_MAX - 1), false);
  expect_equal(tg_float(0.5), tg_float(0.5), true);
  expect_equal(tg_float(0.0), tg_float(-0.0), false);
  expect_equal(tg_float(-0.0), tg_float(-0.0), true);
  expect_equal(tg_float(NAN), tg_float(NAN), true);
  expect_equal(tg_float(bits(UINT64_C(0x7ff8000000000000))),
               tg_float(bits(UINT64_C(0xfff0000000000123))), true); /* all NaNs are one */
  expect_equal(tg_float(NAN), tg_float(INFINITY), false);
  expect_equal(tg_float(INFINITY), tg_float(-INFINITY), false);
  expect_equal(tg_str_c("ab"), tg_str_c("ab"), true);
  expect_equal(tg_str_c("ab"), tg_str_c("abc"), false);
  expect_equal(tg_str("a\0b", 3), tg_str("a\0c", 3), false);
  expect_equal(tg_str_c("ab"), tg_bytes("ab", 2), false);
  expect_equal(tg_bytes("", 0), tg_bytes(NULL, 0), true);
  cr_assert(tg_value_equal(NULL, NULL));
  cr_assert_not(tg_value_equal(NULL, tg_null()));
  tg_value *f = tg_float(NAN);
  cr_assert(tg_value_equal(f, f));
  tg_value_unref(f);
}

Test(equal, arrays_need_same_dtype_shape_and_bytes) {
  int64_t s6[1] = {6}, s23[2] = {2, 3}, s32[2] = {3, 2}, s16[2] = {1, 6};
  int32_t d[6] = {1, 2, 3, 4, 5, 6};
  expect_equal(tg_ndarray_copy(TG_DT_I32, 2, s23, d), tg_ndarray_copy(TG_DT_I32, 2, s23, d), true);
  expect_equal(tg_ndarray_copy(TG_DT_I32, 2, s23, d), tg_ndarray_copy(TG_DT_U32, 2, s23, d), false);
  expect_equal(tg_ndarray_copy(TG_DT_I32, 2, s23, d), tg_ndarray_copy(TG_DT_F32, 2, s23, d), false);
  expect_equal(tg_ndarray_copy(TG_DT_I32, 2, s23, d), tg_ndarray_copy(TG_DT_I32, 2, s32, d), false);
  expect_equal(tg_ndarray_copy(TG_DT_I32, 1, s6, d), tg_ndarray_copy(TG_DT_I32, 2, s16, d), false);
  expect_equal(tg_ndarray_copy(TG_DT_I32, 1, s6, d), tg_ndarray_copy(TG_DT_I16, 1, (int64_t[]){12}, d),
               false);
  int32_t e[6] = {1, 2, 3, 4, 5, 7};
  expect_equal(tg_ndarray_copy(TG_DT_I32, 1, s6, d), tg_ndarray_copy(TG_DT_I32, 1, s6, e), false);
  /* Bytes, not numbers: NaN payloads and -0.0 count inside arrays. */
  double x = 0.0, y = -0.0;
  expect_equal(tg_ndarray_copy(TG_DT_F64, 0, NULL, &x), tg_ndarray_copy(TG_DT_F64, 0, NULL, &y), false);
  /* A wrapped array equals a copied one. */
  counter c = {0};
  memset(wrap_buf, 0, sizeof wrap_buf);
  int64_t s8[1] = {8};
  expect_equal(wrapped(&c), tg_ndarray_new(TG_DT_F64, 1, s8), true);
  cr_assert_eq(c.calls, 1);
  int64_t z1[2] = {0, 3}, z2[2] = {3, 0};
  expect_equal(tg_ndarray_new(TG_DT_U8, 2, z1), tg_ndarray_new(TG_DT_U8, 2, z2), false);
}

Test(equal, lists_are_ordered) {
  expect_equal(tg_list_of(2, tg_int(1), tg_str_c("a")), tg_list_of(2, tg_int(1), tg_str_c("a")), true);
  expect_equal(tg_list_of(2, tg_int(1), tg_str_c("a")), tg_list_of(2, tg_str_c("a"), tg_int(1)), false);
  expect_equal(tg_list_of(1, tg_int(1)), tg_list_of(2, tg_int(1), tg_int(1)), false);
  expect_equal(tg_list_of(0), tg_map_new(0), false);
  expect_equal(tg_list_of(1, tg_list_of(1, tg_float(NAN))), tg_list_of(1, tg_list_of(1, tg_float(NAN))),
               true);
  expect_equal(tg_list_of(1, tg_list_of(1, tg_float(0.0))), tg_list_of(1, tg_list_of(1, tg_float(-0.0))),
               false);
}

static tg_value *map_of_range(int n, bool reversed, int changed) {
  tg_value *m = tg_map_new(0);
  for (int k = 0; k < n; k++) {
    int i = reversed ? n - 1 - k : k;
    char key[16];
    snprintf(key, sizeof key, "key%d", i);
    cr_assert_eq(tg_map_put_c(m, key, tg_list_of(1, tg_int(i == changed ? -1 : i))), TG_OK);
  }
  return m;
}

Test(equal, maps_ignore_order) {
  /* Small maps (linear scan) and big ones (hashed index). */
  for (int n = 0; n <= 40; n += 5) {
    expect_equal(map_of_range(n, false, -1), map_of_range(n, true, -1), true);
    if (n) expect_equal(map_of_range(n, false, -1), map_of_range(n, true, n / 2), false);
    expect_equal(map_of_range(n, false, -1), map_of_range(n + 1, false, -1), false);
  }
  /* Same size, different keys. */
  tg_value *a = tg_map_new(0), *b = tg_map_new(0);
  cr_assert_eq(tg_map_put_c(a, "x", tg_null()), TG_OK);
  cr_assert_eq(tg_map_put_c(b, "y", tg_null()), TG_OK);
  expect_equal(a, b, false);
  a = tg_map_new(0);
  b = tg_map_new(0);
  cr_assert_eq(tg_map_put(a, "k\0", 2, tg_int(1)), TG_OK);
  cr_assert_eq(tg_map_put(b, "k", 1, tg_int(1)), TG_OK);
  expect_equal(a, b, false);
}
