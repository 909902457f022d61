/* tests/test_json.c: tg_value_to_json and tg_value_from_json: exact text,
 * the "$" forms, errors with line and column, deep nesting, and round
 * trips of random values. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gen_values.h"
#include "tgraph/value.h"

/* ---- helpers --------------------------------------------------------------- */

static char *to_json(const tg_value *v, unsigned flags, size_t *len) {
  char *s = NULL;
  tg_error err;
  tg_error_clear(&err);
  int rc = tg_value_to_json(v, flags, &s, len, &err);
  cr_assert_eq(rc, TG_OK, "tg_value_to_json: %s", err.msg);
  cr_assert_not_null(s);
  return s;
}

/* Write v (taken) and compare with the expected text, compact or pretty. */
static void expect_json(tg_value *v, unsigned flags, const char *want) {
  cr_assert_not_null(v);
  size_t len = 0;
  char *s = to_json(v, flags, &len);
  cr_assert_str_eq(s, want);
  cr_assert_eq(len, strlen(want));
  free(s);
  tg_value_unref(v);
}

static tg_value *parse_ok(const char *text) {
  tg_value *v = NULL;
  tg_error err;
  tg_error_clear(&err);
  int rc = tg_value_from_json(text, strlen(text), &v, &err);
  cr_assert_eq(rc, TG_OK, "parsing %s: %s", text, err.msg);
  cr_assert_not_null(v);
  return v;
}

static void expect_parse_error_n(const char *text, size_t len, int code, const char *msg) {
  tg_value *v = (tg_value *)1;
  tg_error err;
  tg_error_clear(&err);
  int rc = tg_value_from_json(text, len, &v, &err);
  cr_assert_eq(rc, code, "parsing %.60s: got %s (%s)", text, tg_err_name(rc), err.msg);
  cr_assert_null(v);
  cr_assert_eq(err.code, code);
  cr_assert_str_eq(err.msg, msg);
}

static void expect_parse_error(const char *text, int code, const char *msg) {
  expect_parse_error_n(text, strlen(text), code, msg);
}

/* Parse text and check that it equals want (taken). */
static void expect_value(const char *text, tg_value *want) {
  cr_assert_not_null(want);
  tg_value *v = parse_ok(text);
  cr_assert(tg_value_equal(v, want), "parsing %s gave another value", text);
  tg_value_unref(v);
  tg_value_unref(want);
}

static double bits_double(uint64_t u) {
  double d;
  memcpy(&d, &u, 8);
  return d;
}

/* ---- writing scalars --------------------------------------------------------- */

Test(json_write, scalars) {
  expect_json(tg_null(), 0, "null");
  expect_json(tg_bool(true), 0, "true");
  expect_json(tg_bool(false), 0, "false");
  expect_json(tg_int(0), 0, "0");
  expect_json(tg_int(-1), 0, "-1");
  expect_json(tg_int(INT64_MAX), 0, "9223372036854775807");
  expect_json(tg_int(INT64_MIN), 0, "-9223372036854775808");
  expect_json(tg_int(INT64_C(1) << 62), 0, "4611686018427387904");
  expect_json(tg_int(-(INT64_C(1) << 62) - 1), 0, "-4611686018427387905");
}

Test(json_write, floats_read_back_as_floats_exactly) {
  expect_json(tg_float(1.0), 0, "1.0");
  expect_json(tg_float(-3.0), 0, "-3.0");
  expect_json(tg_float(0.0), 0, "0.0");
  expect_json(tg_float(-0.0), 0, "-0.0");
  expect_json(tg_float(0.1), 0, "0.1");
  expect_json(tg_float(2.5), 0, "2.5");
  expect_json(tg_float(1.0 / 3.0), 0, "0.3333333333333333");     /* %.16g */
  expect_json(tg_float(0.1 + 0.2), 0, "0.30000000000000004");   /* %.17g */
  expect_json(tg_float(9007199254740992.0), 0, "9007199254740992.0");
  expect_json(tg_float(1e300), 0, "1e+300");
  expect_json(tg_float(1.5e-7), 0, "1.5e-07");
  expect_json(tg_float(1e15), 0, "1e+15");
  expect_json(tg_float(123456789012345.0), 0, "123456789012345.0");
  expect_json(tg_float(5e-324), 0, "4.94065645841247e-324");
  expect_json(tg_float(1.7976931348623157e308), 0, "1.7976931348623157e+308");
}

Test(json_write, non_finite_floats) {
  expect_json(tg_float(NAN), 0, "{\"$float\":\"nan\"}");
  expect_json(tg_float(bits_double(UINT64_C(0xfff8000000000001))), 0, "{\"$float\":\"nan\"}");
  expect_json(tg_float(INFINITY), 0, "{\"$float\":\"inf\"}");
  expect_json(tg_float(-INFINITY), 0, "{\"$float\":\"-inf\"}");
  expect_json(tg_float(-INFINITY), TG_JSON_PRETTY, "{\"$float\": \"-inf\"}");
}

Test(json_write, string_escapes) {
  static const char s[] = "q\"b\\\b\f\n\r\t\x01\x1f\x7f/\xc3\xa9\xf0\x9f\x98\x80";
  expect_json(tg_str(s, sizeof s - 1), 0,
              "\"q\\\"b\\\\\\b\\f\\n\\r\\t\\u0001\\u001f\x7f/\xc3\xa9\xf0\x9f\x98\x80\"");
  expect_json(tg_str("a\0b\0", 4), 0, "\"a\\u0000b\\u0000\"");
  expect_json(tg_str("", 0), 0, "\"\"");
}

Test(json_write, bytes_as_base64) {
  /* RFC 4648 test vectors. */
  expect_json(tg_bytes("", 0), 0, "{\"$bytes\":\"\"}");
  expect_json(tg_bytes("f", 1), 0, "{\"$bytes\":\"Zg==\"}");
  expect_json(tg_bytes("fo", 2), 0, "{\"$bytes\":\"Zm8=\"}");
  expect_json(tg_bytes("foo", 3), 0, "{\"$bytes\":\"Zm9v\"}");
  expect_json(tg_bytes("foob", 4), 0, "{\"$bytes\":\"Zm9vYg==\"}");
  expect_json(tg_bytes("fooba", 5), 0, "{\"$bytes\":\"Zm9vYmE=\"}");
  expect_json(tg_bytes("foobar", 6), TG_JSON_PRETTY, "{\"$bytes\": \"Zm9vYmFy\"}");
  expect_json(tg_bytes("\xff\xfe\x00", 3), 0, "{\"$bytes\":\"//4A\"}");
}

/* ---- writing containers ------------------------------------------------------ */

static tg_value *sample_nested(void) {
  tg_value *m = tg_map_new(0);
  cr_assert_eq(tg_map_put_c(m, "b", tg_int(1)), TG_OK);
  cr_assert_eq(tg_map_put_c(m, "a", tg_list_of(3, tg_null(), tg_list_of(0), tg_map_new(0))), TG_OK);
  cr_assert_eq(tg_map_put_c(m, "k\"", tg_list_of(2, tg_bool(true), tg_float(0.5))), TG_OK);
  return m;
}

Test(json_write, containers_compact) {
  expect_json(tg_list_of(0), 0, "[]");
  expect_json(tg_map_new(0), 0, "{}");
  expect_json(sample_nested(), 0, "{\"b\":1,\"a\":[null,[],{}],\"k\\\"\":[true,0.5]}");
}

Test(json_write, containers_pretty) {
  expect_json(tg_list_of(0), TG_JSON_PRETTY, "[]");
  expect_json(tg_map_new(0), TG_JSON_PRETTY, "{}");
  expect_json(tg_list_of(1, tg_int(7)), TG_JSON_PRETTY, "[\n  7\n]");
  expect_json(sample_nested(), TG_JSON_PRETTY,
              "{\n"
              "  \"b\": 1,\n"
              "  \"a\": [\n"
              "    null,\n"
              "    [],\n"
              "    {}\n"
              "  ],\n"
              "  \"k\\\"\": [\n"
              "    true,\n"
              "    0.5\n"
              "  ]\n"
              "}");
}

Test(json_write, map_with_lone_dollar_key_is_wrapped) {
  tg_value *m = tg_map_new(0);
  cr_assert_eq(tg_map_put_c(m, "$float", tg_str_c("nan")), TG_OK);
  expect_json(tg_value_ref(m), 0, "{\"$map\":{\"$float\":\"nan\"}}");
  expect_json(m, TG_JSON_PRETTY, "{\n  \"$map\": {\n    \"$float\": \"nan\"\n  }\n}");
  m = tg_map_new(0);
  cr_assert_eq(tg_map_put_c(m, "$", tg_int(1)), TG_OK);
  expect_json(m, 0, "{\"$map\":{\"$\":1}}");
  /* Two "$" keys, or one key not starting with '$', need no wrapper. */
  m = tg_map_new(0);
  cr_assert_eq(tg_map_put_c(m, "$a", tg_int(1)), TG_OK);
  cr_assert_eq(tg_map_put_c(m, "$b", tg_int(2)), TG_OK);
  expect_json(m, 0, "{\"$a\":1,\"$b\":2}");
  m = tg_map_new(0);
  cr_assert_eq(tg_map_put_c(m, "a$", tg_int(1)), TG_OK);
  expect_json(m, 0, "{\"a$\":1}");
}

Test(json_write, map_with_nul_in_key_is_written_as_pairs) {
  tg_value *m = tg_map_new(0);
  cr_assert_eq(tg_map_put(m, "a\0b", 3, tg_int(1)), TG_OK);
  cr_assert_eq(tg_map_put_c(m, "c", tg_list_of(0)), TG_OK);
  expect_json(tg_value_ref(m), 0, "{\"$map\":[[\"a\\u0000b\",1],[\"c\",[]]]}");
  expect_json(m, TG_JSON_PRETTY,
              "{\n"
              "  \"$map\": [\n"
              "    [\n"
              "      \"a\\u0000b\",\n"
              "      1\n"
              "    ],\n"
              "    [\n"
              "      \"c\",\n"
              "      []\n"
              "    ]\n"
              "  ]\n"
              "}");
}

/* ---- writing arrays -------------------------------------------------------- */

static tg_value *array_of(tg_dtype dt, int ndim, const int64_t *shape, const void *data) {
  tg_value *a = tg_ndarray_copy(dt, ndim, shape, data);
  cr_assert_not_null(a);
  return a;
}

Test(json_write, ndarray_every_dtype) {
  static const int64_t s3[] = {3}, s23[] = {2, 3};
  static const uint8_t b[] = {1, 0, 1};
  static const int8_t i8[] = {-128, 0, 127};
  static const int16_t i16[] = {-32768, 1, 32767};
  static const int32_t i32[] = {INT32_MIN, 2, INT32_MAX};
  static const int64_t i64[] = {INT64_MIN, 3, INT64_MAX};
  static const uint8_t u8[] = {0, 1, 255};
  static const uint16_t u16[] = {0, 1, 65535};
  static const uint32_t u32[] = {0, 1, UINT32_MAX};
  static const uint64_t u64[] = {0, 1, (uint64_t)INT64_MAX};
  static const float f32[] = {0.1f, -2.0f, 3.4028235e38f};
  static const double f64[] = {1.0, -0.0, 0.1, 2.5, 1e300, -7.0};
#define A(dt, data) array_of(dt, 1, s3, data)
  expect_json(A(TG_DT_BOOL, b), 0,
              "{\"$ndarray\":{\"dtype\":\"bool\",\"shape\":[3],\"data\":[true,false,true]}}");
  expect_json(A(TG_DT_I8, i8), 0,
              "{\"$ndarray\":{\"dtype\":\"i8\",\"shape\":[3],\"data\":[-128,0,127]}}");
  expect_json(A(TG_DT_I16, i16), 0,
              "{\"$ndarray\":{\"dtype\":\"i16\",\"shape\":[3],\"data\":[-32768,1,32767]}}");
  expect_json(A(TG_DT_I32, i32), 0,
              "{\"$ndarray\":{\"dtype\":\"i32\",\"shape\":[3],"
              "\"data\":[-2147483648,2,2147483647]}}");
  expect_json(A(TG_DT_I64, i64), 0,
              "{\"$ndarray\":{\"dtype\":\"i64\",\"shape\":[3],"
              "\"data\":[-9223372036854775808,3,9223372036854775807]}}");
  expect_json(A(TG_DT_U8, u8), 0,
              "{\"$ndarray\":{\"dtype\":\"u8\",\"shape\":[3],\"data\":[0,1,255]}}");
  expect_json(A(TG_DT_U16, u16), 0,
              "{\"$ndarray\":{\"dtype\":\"u16\",\"shape\":[3],\"data\":[0,1,65535]}}");
  expect_json(A(TG_DT_U32, u32), 0,
              "{\"$ndarray\":{\"dtype\":\"u32\",\"shape\":[3],\"data\":[0,1,4294967295]}}");
  expect_json(A(TG_DT_U64, u64), 0,
              "{\"$ndarray\":{\"dtype\":\"u64\",\"shape\":[3],"
              "\"data\":[0,1,9223372036854775807]}}");
  expect_json(A(TG_DT_F32, f32), 0,
              "{\"$ndarray\":{\"dtype\":\"f32\",\"shape\":[3],"
              "\"data\":[0.1,-2.0,3.4028235e+38]}}");
#undef A
  expect_json(array_of(TG_DT_F64, 2, s23, f64), 0,
              "{\"$ndarray\":{\"dtype\":\"f64\",\"shape\":[2,3],"
              "\"data\":[1.0,-0.0,0.1,2.5,1e+300,-7.0]}}");
  expect_json(array_of(TG_DT_F64, 2, s23, f64), TG_JSON_PRETTY,
              "{\n"
              "  \"$ndarray\": {\n"
              "    \"dtype\": \"f64\",\n"
              "    \"shape\": [2, 3],\n"
              "    \"data\": [1.0, -0.0, 0.1, 2.5, 1e+300, -7.0]\n"
              "  }\n"
              "}");
}

Test(json_write, ndarray_shapes) {
  static const int64_t s0[] = {0}, s20[] = {2, 0};
  static const double one = 4.0;
  expect_json(array_of(TG_DT_F64, 0, NULL, &one), 0,
              "{\"$ndarray\":{\"dtype\":\"f64\",\"shape\":[],\"data\":[4.0]}}");
  expect_json(array_of(TG_DT_I32, 1, s0, NULL), 0,
              "{\"$ndarray\":{\"dtype\":\"i32\",\"shape\":[0],\"data\":[]}}");
  expect_json(array_of(TG_DT_U8, 2, s20, NULL), TG_JSON_PRETTY,
              "{\n"
              "  \"$ndarray\": {\n"
              "    \"dtype\": \"u8\",\n"
              "    \"shape\": [2, 0],\n"
              "    \"data\": []\n"
              "  }\n"
              "}");
}

/* Non-finite floats and u64 above INT64_MAX have no exact JSON number:
 * such arrays carry their raw bytes as base64. */
Test(json_write, ndarray_raw_bytes_when_numbers_cannot_say_it) {
  static const int64_t s2[] = {2}, s1[] = {1};
  double f64[2] = {1.0, NAN};
  /* 1.0 = 00 00 00 00 00 00 f0 3f, NaN = 00 00 00 00 00 00 f8 7f */
  expect_json(array_of(TG_DT_F64, 1, s2, f64), 0,
              "{\"$ndarray\":{\"dtype\":\"f64\",\"shape\":[2],"
              "\"data\":\"AAAAAAAA8D8AAAAAAAD4fw==\"}}");
  float f32[1] = {-INFINITY}; /* 00 00 80 ff */
  expect_json(array_of(TG_DT_F32, 1, s1, f32), 0,
              "{\"$ndarray\":{\"dtype\":\"f32\",\"shape\":[1],\"data\":\"AACA/w==\"}}");
  uint64_t u64[1] = {UINT64_MAX};
  expect_json(array_of(TG_DT_U64, 1, s1, u64), 0,
              "{\"$ndarray\":{\"dtype\":\"u64\",\"shape\":[1],\"data\":\"//////////8=\"}}");
}

Test(json_write, bad_arguments) {
  char *s = (char *)1;
  tg_error err;
  cr_assert_eq(tg_value_to_json(NULL, 0, &s, NULL, &err), TG_EINVAL);
  cr_assert_null(s);
  cr_assert_eq(err.code, TG_EINVAL);
  cr_assert_eq(tg_value_to_json(tg_null(), 0, NULL, NULL, NULL), TG_EINVAL);
  cr_assert_eq(tg_value_to_json(tg_null(), 0x100, &s, NULL, &err), TG_EINVAL);
  cr_assert_str_eq(err.msg, "tg_value_to_json: unknown flags");
}

/* ---- reading ------------------------------------------------------------------ */

Test(json_read, scalars) {
  expect_value("null", tg_null());
  expect_value(" true ", tg_bool(true));
  expect_value("false", tg_bool(false));
  expect_value("0", tg_int(0));
  expect_value("-0", tg_int(0));
  expect_value("-9223372036854775808", tg_int(INT64_MIN));
  expect_value("9223372036854775807", tg_int(INT64_MAX));
  expect_value("1.0", tg_float(1.0));
  expect_value("-0.0", tg_float(-0.0));
  expect_value("1e2", tg_float(100.0));
  expect_value("1E-2", tg_float(0.01));
  expect_value("1e-400", tg_float(0.0));
  expect_value("\"a\\u0000b\\n\\u00e9\\ud83d\\ude00\"", tg_str("a\0b\n\xc3\xa9\xf0\x9f\x98\x80", 10));
  /* int and float stay apart */
  tg_value *v = parse_ok("1");
  cr_assert_eq(tg_value_type(v), TG_INT);
  tg_value_unref(v);
  v = parse_ok("1.0");
  cr_assert_eq(tg_value_type(v), TG_FLOAT);
  tg_value_unref(v);
}

Test(json_read, objects_keep_their_order) {
  tg_value *v = parse_ok("{\"z\":1,\"a\":2,\"m\":3,\"b\":4,\"y\":5,\"c\":6,\"x\":7,\"d\":8,"
                         "\"w\":9,\"e\":10}");
  static const char order[] = "zamby cxdwe";
  cr_assert_eq(tg_map_len(v), 10);
  for (size_t i = 0, k = 0; i < 10; i++, k++) {
    if (order[k] == ' ') k++;
    size_t kl;
    const char *key = tg_map_key_at(v, i, &kl);
    cr_assert_eq(kl, 1);
    cr_assert_eq(key[0], order[k]);
    cr_assert_eq(tg_value_int(tg_map_value_at(v, i)), (int64_t)i + 1);
  }
  tg_value_unref(v);
}

Test(json_read, nested_containers) {
  tg_value *m = tg_map_new(0);
  cr_assert_eq(tg_map_put_c(m, "a", tg_list_of(3, tg_int(1), tg_list_of(0), tg_map_new(0))), TG_OK);
  cr_assert_eq(tg_map_put_c(m, "", tg_str_c("empty key")), TG_OK);
  expect_value("{\"a\": [1, [], {}], \"\": \"empty key\"}", m);
}

Test(json_read, dollar_forms) {
  tg_value *v = parse_ok("{\"$float\":\"nan\"}");
  cr_assert(isnan(tg_value_float(v)));
  tg_value_unref(v);
  expect_value("{\"$float\":\"inf\"}", tg_float(INFINITY));
  expect_value("{\"$float\":\"-inf\"}", tg_float(-INFINITY));
  expect_value("{\"$bytes\":\"\"}", tg_bytes("", 0));
  expect_value("{\"$bytes\":\"Zm9vYg==\"}", tg_bytes("foob", 4));
  expect_value("{\"$bytes\":\"Zm9vYmE=\"}", tg_bytes("fooba", 5));
  expect_value("{\"$bytes\":\"//4A\"}", tg_bytes("\xff\xfe\x00", 3));
  tg_value *m = tg_map_new(0);
  cr_assert_eq(tg_map_put_c(m, "$bytes", tg_str_c("x")), TG_OK);
  expect_value("{\"$map\":{\"$bytes\":\"x\"}}", m);
  m = tg_map_new(0);
  cr_assert_eq(tg_map_put(m, "a\0", 2, tg_int(1)), TG_OK);
  cr_assert_eq(tg_map_put_c(m, "b", tg_int(2)), TG_OK);
  expect_value("{\"$map\":[[\"a\\u0000\",1],[\"b\",2]]}", m);
  expect_value("{\"$map\":[]}", tg_map_new(0));
  /* Several "$" keys: an ordinary map. */
  m = tg_map_new(0);
  cr_assert_eq(tg_map_put_c(m, "$float", tg_str_c("nan")), TG_OK);
  cr_assert_eq(tg_map_put_c(m, "$x", tg_null()), TG_OK);
  expect_value("{\"$float\":\"nan\",\"$x\":null}", m);
}

Test(json_read, ndarray_from_numbers_and_base64) {
  static const int64_t s23[] = {2, 3}, s2[] = {2};
  static const double f64[] = {1, 2, 3.5, -0.0, 5, 6};
  expect_value("{\"$ndarray\":{\"dtype\":\"f64\",\"shape\":[2,3],\"data\":[1,2,3.5,-0.0,5,6.0]}}",
               tg_ndarray_copy(TG_DT_F64, 2, s23, f64));
  /* Keys in any order; integers are fine for float dtypes. */
  static const float f32[] = {1.5f, 3.4028235e38f};
  expect_value("{\"$ndarray\":{\"data\":[1.5,3.4028235e38],\"shape\":[2],\"dtype\":\"f32\"}}",
               tg_ndarray_copy(TG_DT_F32, 1, s2, f32));
  static const int16_t i16[] = {-32768, 32767};
  expect_value("{\"$ndarray\":{\"dtype\":\"i16\",\"shape\":[2],\"data\":\"AID/fw==\"}}",
               tg_ndarray_copy(TG_DT_I16, 1, s2, i16));
  static const uint8_t b[] = {1, 0};
  expect_value("{\"$ndarray\":{\"dtype\":\"bool\",\"shape\":[2],\"data\":[true,false]}}",
               tg_ndarray_copy(TG_DT_BOOL, 1, s2, b));
  static const uint64_t u64[] = {UINT64_MAX, 1};
  expect_value("{\"$ndarray\":{\"dtype\":\"u64\",\"shape\":[2],"
               "\"data\":\"//////////8BAAAAAAAAAA==\"}}",
               tg_ndarray_copy(TG_DT_U64, 1, s2, u64));
  static const double scalar = 2.0;
  expect_value("{\"$ndarray\":{\"dtype\":\"f64\",\"shape\":[],\"data\":[2]}}",
               tg_ndarray_copy(TG_DT_F64, 0, NULL, &scalar));
}

/* ---- errors -------------------------------------------------------------------- */

Test(json_read, syntax_errors_name_line_and_column) {
  expect_parse_error("", TG_EJSON, "line 1, column 0: unexpected token near end of file");
  expect_parse_error("[1,\n  2,,]", TG_EJSON, "line 2, column 5: unexpected token near ','");
  expect_parse_error("[1, 2", TG_EJSON, "line 1, column 5: ']' expected near end of file");
  expect_parse_error("{\"a\":1,\"a\":2}", TG_EJSON,
                     "line 1, column 10: duplicate object key near '\"a\"'");
  expect_parse_error("1 2", TG_EJSON, "line 1, column 3: end of file expected near '2'");
  expect_parse_error("[99999999999999999999]", TG_EJSON,
                     "line 1, column 21: too big integer near '99999999999999999999'");
  expect_parse_error("[1e400]", TG_EJSON, "line 1, column 6: real number overflow near '1e400'");
  expect_parse_error("\"\xff\"", TG_EJSON, "line 1, column 1: unable to decode byte 0xff near '\"'");
  expect_parse_error("\"a\\ud800\"", TG_EJSON,
                     "line 1, column 9: invalid Unicode '\\uD800' near '\"a\\ud800\"'");
  /* Columns count characters, the offset counts bytes. */
  tg_value *v = NULL;
  tg_error err;
  static const char text[] = "[\"\xc3\xa9\xc3\xa9\", x]";
  cr_assert_eq(tg_value_from_json(text, sizeof text - 1, &v, &err), TG_EJSON);
  cr_assert_str_eq(err.msg, "line 1, column 8: invalid token near 'x'");
  cr_assert_eq(err.has_offset, 1);
  cr_assert_eq(err.offset, 10);
}

Test(json_read, text_is_length_counted) {
  /* The first 3 bytes only: a complete value. */
  tg_value *v = NULL;
  cr_assert_eq(tg_value_from_json("[1]garbage", 3, &v, NULL), TG_OK);
  cr_assert_eq(tg_list_len(v), 1);
  tg_value_unref(v);
  expect_parse_error_n("[1]", 2, TG_EJSON, "line 1, column 2: ']' expected near end of file");
}

Test(json_read, bad_arguments) {
  tg_value *v = (tg_value *)1;
  tg_error err;
  cr_assert_eq(tg_value_from_json(NULL, 3, &v, &err), TG_EINVAL);
  cr_assert_null(v);
  cr_assert_str_eq(err.msg, "tg_value_from_json: text is NULL");
  cr_assert_eq(tg_value_from_json("1", 1, NULL, &err), TG_EINVAL);
  expect_parse_error_n(NULL, 0, TG_EJSON, "line 1, column 0: unexpected token near end of file");
}

Test(json_read, malformed_dollar_forms) {
  expect_parse_error("{\"$float\":\"NaN\"}", TG_EJSON,
                     "\"$float\" is not \"nan\", \"inf\" or \"-inf\" (at /$float)");
  expect_parse_error("[{\"$float\":1.5}]", TG_EJSON,
                     "\"$float\" is not \"nan\", \"inf\" or \"-inf\" (at /0/$float)");
  expect_parse_error("{\"$float\":\"nan\\u0000\"}", TG_EJSON,
                     "\"$float\" is not \"nan\", \"inf\" or \"-inf\" (at /$float)");
  expect_parse_error("{\"$bytes\":\"Zg=\"}", TG_EJSON, "\"$bytes\" is not a base64 string (at /$bytes)");
  expect_parse_error("{\"$bytes\":\"Z===\"}", TG_EJSON, "\"$bytes\" is not a base64 string (at /$bytes)");
  expect_parse_error("{\"$bytes\":\"Zg=A\"}", TG_EJSON, "\"$bytes\" is not a base64 string (at /$bytes)");
  expect_parse_error("{\"$bytes\":\"Zm9v\\u0000AAA\"}", TG_EJSON,
                     "\"$bytes\" is not a base64 string (at /$bytes)");
  expect_parse_error("{\"$bytes\":12}", TG_EJSON, "\"$bytes\" is not a base64 string (at /$bytes)");
  expect_parse_error("{\"a\":{\"$map\":3}}", TG_EJSON,
                     "\"$map\" is neither an object nor a list of pairs (at /a/$map)");
  expect_parse_error("{\"$map\":[[\"a\"]]}", TG_EJSON,
                     "\"$map\" entry is not a [key, value] pair (at /$map/0)");
  expect_parse_error("{\"$map\":[[\"a\",1],[\"a\",2]]}", TG_EJSON,
                     "\"$map\" key is repeated (at /$map/1)");
  expect_parse_error("{\"$map\":[[\"a\",{\"$float\":0}]]}", TG_EJSON,
                     "\"$float\" is not \"nan\", \"inf\" or \"-inf\" (at /$map/0/1/$float)");
  expect_parse_error("{\"x\":[{\"$frob\":1}]}", TG_EJSON,
                     "unknown form \"$frob\" (write a map with one \"$\" key as "
                     "{\"$map\": {...}}) (at /x/0)");
  expect_parse_error("{\"a/b~\":{\"$q\":1}}", TG_EJSON,
                     "unknown form \"$q\" (write a map with one \"$\" key as "
                     "{\"$map\": {...}}) (at /a~1b~0)");
}

Test(json_read, malformed_ndarrays) {
#define ND(body) "{\"$ndarray\":" body "}"
  expect_parse_error(ND("[1]"), TG_EJSON, "\"$ndarray\" is not an object (at /$ndarray)");
  expect_parse_error(ND("{\"dtype\":\"f64\",\"shape\":[1]}"), TG_EJSON,
                     "\"$ndarray\" needs \"dtype\", \"shape\" and \"data\" (at /$ndarray)");
  expect_parse_error(ND("{\"dtype\":\"f64\",\"shape\":[],\"data\":[1],\"order\":\"C\"}"), TG_EJSON,
                     "\"$ndarray\" has an unknown key \"order\" (at /$ndarray)");
  expect_parse_error(ND("{\"dtype\":\"f16\",\"shape\":[],\"data\":[1]}"), TG_EJSON,
                     "\"$ndarray\" dtype is not a known dtype name (at /$ndarray)");
  expect_parse_error(ND("{\"dtype\":\"f64\\u0000\",\"shape\":[],\"data\":[1]}"), TG_EJSON,
                     "\"$ndarray\" dtype is not a known dtype name (at /$ndarray)");
  expect_parse_error(ND("{\"dtype\":\"f64\",\"shape\":3,\"data\":[1]}"), TG_EJSON,
                     "\"$ndarray\" shape is not a list of at most 32 sizes (at /$ndarray)");
  expect_parse_error(ND("{\"dtype\":\"f64\",\"shape\":[1,-1],\"data\":[]}"), TG_EJSON,
                     "\"$ndarray\" shape[1] is not a size (an integer >= 0) (at /$ndarray)");
  expect_parse_error(ND("{\"dtype\":\"f64\",\"shape\":[1.0],\"data\":[1]}"), TG_EJSON,
                     "\"$ndarray\" shape[0] is not a size (an integer >= 0) (at /$ndarray)");
  expect_parse_error(ND("{\"dtype\":\"u8\",\"shape\":[4294967296,4294967296],\"data\":[]}"),
                     TG_EJSON, "\"$ndarray\" shape is too large (at /$ndarray)");
  expect_parse_error(ND("{\"dtype\":\"f64\",\"shape\":[2,3],\"data\":[1,2,3,4,5]}"), TG_EJSON,
                     "\"$ndarray\" data has 5 elements, its shape needs 6 (at /$ndarray)");
  expect_parse_error(ND("{\"dtype\":\"f64\",\"shape\":[2],\"data\":{}}"), TG_EJSON,
                     "\"$ndarray\" data is neither a list nor a base64 string (at /$ndarray)");
  expect_parse_error(ND("{\"dtype\":\"i16\",\"shape\":[2],\"data\":\"AAAA\"}"), TG_EJSON,
                     "\"$ndarray\" data is not base64 of exactly 4 bytes (at /$ndarray)");
  expect_parse_error(ND("{\"dtype\":\"i16\",\"shape\":[2],\"data\":\"AA*AAA==\"}"), TG_EJSON,
                     "\"$ndarray\" data is not base64 of exactly 4 bytes (at /$ndarray)");
  expect_parse_error(ND("{\"dtype\":\"bool\",\"shape\":[2],\"data\":\"AAI=\"}"), TG_EJSON,
                     "\"$ndarray\" bool data[1] is not 0 or 1 (at /$ndarray)");
  expect_parse_error(ND("{\"dtype\":\"bool\",\"shape\":[2],\"data\":[true,1]}"), TG_EJSON,
                     "\"$ndarray\" data[1] is not a boolean (at /$ndarray)");
  expect_parse_error(ND("{\"dtype\":\"i8\",\"shape\":[2],\"data\":[-128,128]}"), TG_EJSON,
                     "\"$ndarray\" data[1] is not a number in the range of i8 (at /$ndarray)");
  expect_parse_error(ND("{\"dtype\":\"u16\",\"shape\":[1],\"data\":[-1]}"), TG_EJSON,
                     "\"$ndarray\" data[0] is not a number in the range of u16 (at /$ndarray)");
  expect_parse_error(ND("{\"dtype\":\"u32\",\"shape\":[1],\"data\":[4294967296]}"), TG_EJSON,
                     "\"$ndarray\" data[0] is not a number in the range of u32 (at /$ndarray)");
  expect_parse_error(ND("{\"dtype\":\"i32\",\"shape\":[1],\"data\":[1.0]}"), TG_EJSON,
                     "\"$ndarray\" data[0] is not a number in the range of i32 (at /$ndarray)");
  expect_parse_error(ND("{\"dtype\":\"f32\",\"shape\":[1],\"data\":[1e39]}"), TG_EJSON,
                     "\"$ndarray\" data[0] is not a number in the range of f32 (at /$ndarray)");
  expect_parse_error(ND("{\"dtype\":\"f64\",\"shape\":[1],\"data\":[\"1\"]}"), TG_EJSON,
                     "\"$ndarray\" data[0] is not a number in the range of f64 (at /$ndarray)");
#undef ND
}

/* ---- depth ------------------------------------------------------------------------ */

static char *nested_text(size_t levels, const char *open, const char *close, const char *core) {
  size_t lo = strlen(open), lc = strlen(close), lcore = strlen(core);
  char *s = malloc(levels * (lo + lc) + lcore + 1);
  cr_assert_not_null(s);
  char *p = s;
  for (size_t i = 0; i < levels; i++, p += lo) memcpy(p, open, lo);
  memcpy(p, core, lcore);
  p += lcore;
  for (size_t i = 0; i < levels; i++, p += lc) memcpy(p, close, lc);
  *p = '\0';
  return s;
}

Test(json_read, nesting_up_to_the_limit_is_fine) {
  char *s = nested_text(TG_DEPTH_MAX, "[", "]", "1");
  tg_value *v = parse_ok(s);
  cr_assert_eq(tg_value_type(v), TG_LIST);
  free(s);
  /* It writes back to the same text. */
  char *w = to_json(v, 0, NULL);
  char *again = nested_text(TG_DEPTH_MAX, "[", "]", "1");
  cr_assert_str_eq(w, again);
  free(w);
  free(again);
  tg_value_unref(v);
  /* Maps under "$map" wrappers: the wrappers are no levels of their own. */
  s = nested_text(TG_DEPTH_MAX, "{\"$map\":{\"$k\":", "}}", "2");
  v = parse_ok(s);
  free(s);
  w = to_json(v, 0, NULL);
  s = nested_text(TG_DEPTH_MAX, "{\"$map\":{\"$k\":", "}}", "2");
  cr_assert_str_eq(w, s);
  free(w);
  free(s);
  tg_value_unref(v);
}

Test(json_read, one_level_too_deep_is_edepth) {
  char *s = nested_text(TG_DEPTH_MAX + 1, "[", "]", "1");
  tg_value *v = (tg_value *)1;
  tg_error err;
  cr_assert_eq(tg_value_from_json(s, strlen(s), &v, &err), TG_EDEPTH);
  cr_assert_null(v);
  cr_assert(strncmp(err.msg, "lists and maps nest deeper than 512 levels (at /0/0/0/", 52) == 0,
            "%s", err.msg);
  free(s);
  s = nested_text(TG_DEPTH_MAX, "{\"a\":", "}", "{}"); /* 513 maps */
  cr_assert_eq(tg_value_from_json(s, strlen(s), &v, &err), TG_EDEPTH);
  cr_assert(strncmp(err.msg, "lists and maps nest deeper than 512 levels (at /a/a/", 50) == 0,
            "%s", err.msg);
  cr_assert_lt(strlen(err.msg), sizeof err.msg);
  free(s);
}

Test(json_read, hundred_thousand_brackets_fail_cleanly) {
  size_t n = 100000;
  char *s = malloc(n);
  cr_assert_not_null(s);
  memset(s, '[', n);
  expect_parse_error_n(s, n, TG_EDEPTH,
                       "line 1, column 2049: maximum parsing depth reached near '['");
  memset(s, '{', n);
  for (size_t i = 0; i + 5 <= n; i += 5) memcpy(s + i, "{\"a\":", 5);
  tg_value *v = NULL;
  cr_assert_eq(tg_value_from_json(s, n, &v, NULL), TG_EDEPTH);
  free(s);
}

/* ---- round trips ------------------------------------------------------------------ */

/* v -> JSON -> value must be equal, and writing that again must give the
 * same text (maps keep their order, floats their bits). */
static void round_trip(const tg_value *v, unsigned flags) {
  size_t len;
  char *s = to_json(v, flags, &len);
  tg_value *back = NULL;
  tg_error err;
  tg_error_clear(&err);
  int rc = tg_value_from_json(s, len, &back, &err);
  cr_assert_eq(rc, TG_OK, "reading back %s: %s", s, err.msg);
  cr_assert(tg_value_equal(v, back), "round trip changed the value: %s", s);
  char *s2 = to_json(back, flags, NULL);
  cr_assert_str_eq(s, s2);
  free(s2);
  free(s);
  tg_value_unref(back);
}

Test(json_round_trip, random_values) {
  uint64_t rng = 20240611;
  for (int i = 0; i < 3000; i++) {
    tg_value *v = tg_test_random_value(&rng, 1 + i % 4);
    cr_assert_not_null(v);
    round_trip(v, (i & 1) ? TG_JSON_PRETTY : 0);
    tg_value_unref(v);
  }
}

Test(json_round_trip, random_floats_bit_exact) {
  uint64_t rng = 99;
  for (int i = 0; i < 20000; i++) {
    double d = bits_double(tg_test_rand(&rng));
    tg_value *v = tg_float(d);
    round_trip(v, 0);
    tg_value_unref(v);
  }
  /* f32 elements, every exponent. */
  int64_t shape[1] = {4096};
  tg_value *a = tg_ndarray_new(TG_DT_F32, 1, shape);
  uint32_t *p = tg_ndarray_data_mut(a);
  for (int i = 0; i < 4096; i++) {
    uint32_t bits;
    do bits = (uint32_t)tg_test_rand(&rng);
    while (((bits >> 23) & 0xff) == 0xff); /* finite: written as numbers */
    p[i] = bits;
  }
  round_trip(a, 0);
  tg_value_unref(a);
}

/* Damaged JSON either fails with a message or gives a value that itself
 * round-trips; it never crashes (the sanitizer build checks the rest). */
Test(json_round_trip, mutated_texts) {
  uint64_t rng = 7;
  static const char alphabet[] = "[]{}\",:$0123456789.eE+-\\u0000tfn \n";
  int ok = 0, failed = 0;
  for (int i = 0; i < 2000; i++) {
    tg_value *v = tg_test_random_value(&rng, 3);
    size_t len;
    char *s = to_json(v, (i & 1) ? TG_JSON_PRETTY : 0, &len);
    tg_value_unref(v);
    for (int k = 0, n = 1 + (int)tg_test_below(&rng, 3); k < n && len; k++) {
      size_t at = (size_t)tg_test_below(&rng, len);
      switch (tg_test_below(&rng, 3)) {
        case 0: s[at] = alphabet[tg_test_below(&rng, sizeof alphabet - 1)]; break;
        case 1: len = at; break; /* truncate */
        default: s[at] = (char)tg_test_rand(&rng); break;
      }
    }
    tg_value *back = NULL;
    tg_error err;
    tg_error_clear(&err);
    int rc = tg_value_from_json(s, len, &back, &err);
    if (rc == TG_OK) {
      ok++;
      round_trip(back, 0);
      tg_value_unref(back);
    } else {
      failed++;
      cr_assert_null(back);
      cr_assert(rc == TG_EJSON || rc == TG_EDEPTH, "%s", tg_err_name(rc));
      cr_assert_eq(err.code, rc);
      cr_assert_gt(strlen(err.msg), 10);
    }
    free(s);
  }
  cr_log_info("mutated texts: %d read, %d rejected", ok, failed);
  cr_assert_gt(ok, 100);
  cr_assert_gt(failed, 1000);
}

/* ---- speed ------------------------------------------------------------------------- */

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

Test(json_speed, big_map_and_big_list) {
  tg_value *m = tg_map_new(100000);
  char key[32];
  for (int i = 0; i < 100000; i++) {
    int n = snprintf(key, sizeof key, "key%d", i);
    cr_assert_eq(tg_map_put(m, key, (size_t)n, tg_int(i)), TG_OK);
  }
  tg_value *l = tg_list_alloc(1000000);
  for (size_t i = 0; i < 1000000; i++)
    cr_assert_eq(tg_list_init_item(l, i, tg_int((int64_t)i * 7919)), TG_OK);
  double t0 = now_ms();
  size_t mlen, llen;
  char *ms = to_json(m, 0, &mlen);
  double t1 = now_ms();
  char *ls = to_json(l, 0, &llen);
  double t2 = now_ms();
  cr_log_info("map of 100000 keys: %zu bytes in %.1f ms; list of 1e6 ints: %zu bytes in %.1f ms",
              mlen, t1 - t0, llen, t2 - t1);
  /* Milliseconds when optimized; the bound leaves room for sanitizers. */
  cr_expect_lt(t1 - t0, 500.0);
  cr_expect_lt(t2 - t1, 1000.0);
  cr_assert_eq(strncmp(ms, "{\"key0\":0,\"key1\":1,", 19), 0);
  cr_assert_eq(strncmp(ls, "[0,7919,15838,", 14), 0);
  tg_value *back = NULL;
  cr_assert_eq(tg_value_from_json(ms, mlen, &back, NULL), TG_OK);
  cr_assert(tg_value_equal(m, back));
  tg_value_unref(back);
  free(ms);
  free(ls);
  tg_value_unref(m);
  tg_value_unref(l);
}
