/* tests/fuzz/gen_corpus.c: writes the fuzzers' seed corpus: one encoded
 * value per file under DIR/decode/ (plain and zstd-compressed) and JSON
 * texts under DIR/json/ (written by the library, plus hand-written edge
 * cases the writer never produces). Run after a format change:
 *   fuzz_gen_corpus tests/fuzz/corpus
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../gen_values.h"
#include "tgraph/serial.h"
#include "tgraph/value.h"

static const char *out_dir;

static void write_file(const char *sub, const char *name, const void *p,
                       size_t n) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s/%s", out_dir, sub, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
    perror(path);
    exit(1);
  }
}

/* Seed both corpora with v (taken): encoded, optionally compressed too,
 * and as JSON. */
static void seed(const char *name, tg_value *v, int compress) {
  if (!v) {
    fprintf(stderr, "%s: value not built\n", name);
    exit(1);
  }
  char file[256];
  void *buf;
  size_t len;
  tg_error err;
  for (int z = 0; z <= compress; z++) {
    tg_encode_opts o = {.version = TG_ENCODE_OPTS_V1, .compress = z ? 3 : 0};
    if (tg_encode(v, &o, &buf, &len, &err) != TG_OK) {
      fprintf(stderr, "%s: %s\n", name, err.msg);
      exit(1);
    }
    snprintf(file, sizeof file, "%s%s.bin", name, z ? "-zstd" : "");
    write_file("decode", file, buf, len);
    free(buf);
  }
  char *text;
  if (tg_value_to_json(v, 0, &text, &len, &err) != TG_OK) {
    fprintf(stderr, "%s: %s\n", name, err.msg);
    exit(1);
  }
  snprintf(file, sizeof file, "%s.json", name);
  write_file("json", file, text, len);
  free(text);
  tg_value_unref(v);
}

static tg_value *f64_2x3(void) {
  static const double d[6] = {1, -2.5, 3e100, 0.1, -0.0, 6};
  const int64_t shape[2] = {2, 3};
  return tg_ndarray_copy(TG_DT_F64, 2, shape, d);
}

static tg_value *u8_ramp(int64_t n) {
  tg_value *a = tg_ndarray_new(TG_DT_U8, 1, &n);
  unsigned char *p = a ? tg_ndarray_data_mut(a) : NULL;
  for (int64_t i = 0; p && i < n; i++) p[i] = (unsigned char)(i * 7);
  return a;
}

static tg_value *small_map(void) {
  tg_value *m = tg_map_new(0);
  tg_map_put_c(m, "b", tg_int(1));
  tg_map_put_c(m, "a", tg_list_of(2, tg_bool(true), tg_null()));
  tg_map_put_c(m, "h\xc3\xa9", tg_str_c("x"));
  tg_map_put(m, "k\0z", 3, tg_float(2.5));
  return m;
}

static tg_value *dollar_map(void) {
  tg_value *m = tg_map_new(0);
  tg_map_put_c(m, "$float", tg_str_c("nan"));
  return m;
}

static tg_value *deep(int levels) {
  tg_value *v = tg_int(7);
  for (int i = 0; v && i < levels; i++) v = tg_list_of(1, v);
  return v;
}

static void seed_values(void) {
  const int64_t zero_shape[2] = {0, 3}, one = 1;
  static const unsigned char bools[4] = {1, 0, 0, 1};
  static const short i16[3] = {-1, 300, 32767};
  char big[3000];
  for (size_t i = 0; i < sizeof big; i++) big[i] = (char)('a' + i % 26);
  seed("null", tg_null(), 0);
  seed("true", tg_bool(true), 0);
  seed("false", tg_bool(false), 0);
  seed("int-0", tg_int(0), 0);
  seed("int-minus1", tg_int(-1), 0);
  seed("int-min", tg_int(INT64_MIN), 0);
  seed("int-max", tg_int(INT64_MAX), 0);
  seed("int-2p62", tg_int(INT64_C(1) << 62), 0);
  seed("float-1.5", tg_float(1.5), 0);
  seed("float-nan", tg_float(NAN), 0);
  seed("float-minus0", tg_float(-0.0), 0);
  seed("float-inf", tg_float(-INFINITY), 0);
  seed("str-empty", tg_str("", 0), 0);
  seed("str-utf8-nul", tg_str("h\xc3\xa9\0llo\xf0\x9f\x98\x80", 11), 0);
  seed("str-long", tg_str(big, sizeof big), 1);
  seed("bytes", tg_bytes("\0\1\2\xff", 4), 0);
  seed("bytes-long", tg_bytes(big, sizeof big), 1);
  seed("array-f64-2x3", f64_2x3(), 0);
  seed("array-bool", tg_ndarray_copy(TG_DT_BOOL, 1, (int64_t[]){4}, bools), 0);
  seed("array-i16", tg_ndarray_copy(TG_DT_I16, 1, (int64_t[]){3}, i16), 0);
  seed("array-0d", tg_ndarray_copy(TG_DT_F32, 0, NULL, &(float){1.0f}), 0);
  seed("array-empty", tg_ndarray_new(TG_DT_I64, 2, zero_shape), 0);
  seed("array-u8-1000", u8_ramp(1000), 1);
  seed("array-1", tg_ndarray_new(TG_DT_U64, 1, &one), 0);
  seed("list-empty", tg_list_of(0), 0);
  seed("list-nested",
       tg_list_of(3, tg_int(1), tg_list_of(2, tg_str_c("a"), tg_null()),
                  f64_2x3()),
       1);
  seed("map", small_map(), 1);
  seed("map-empty", tg_map_new(0), 0);
  seed("map-dollar", dollar_map(), 0);
  seed("deep-40", deep(40), 0);
  for (uint64_t s = 1; s <= 16; s++) {
    uint64_t rng = s * 1000003;
    char name[32];
    snprintf(name, sizeof name, "random-%02u", (unsigned)s);
    seed(name, tg_test_random_value(&rng, 3), s % 4 == 0);
  }
}

/* JSON the writer never produces: other spellings, escapes, whitespace,
 * base64 array data, and a few malformed texts. */
static void seed_json_texts(void) {
  static const char *const texts[][2] = {
      {"graph", "{\n  \"tgraph\": 1,\n  \"tasks\": {\n    \"text\": "
                "{\"fn\": \"file\", \"args\": [\"corpus.txt\"]},\n    "
                "\"top\": {\"fn\": \"wc.top\", \"args\": [{\"ref\": \"text\", "
                "\"get\": 0}, 10], \"cache\": true}\n  },\n  \"outputs\": "
                "[\"top\"]\n}\n"},
      {"escapes", "[\"\\u00e9\\ud83d\\ude00\\n\\t\\\"\\\\\\/\\u0000\\b\\f\\r\"]"},
      {"numbers", "[0, -0, 1e308, -1.5e-300, 9223372036854775807, "
                  "-9223372036854775808, 0.1, 1E+2, 2.5e0, -0.0]"},
      {"specials", "[{\"$float\": \"inf\"}, {\"$float\": \"-inf\"}, "
                   "{\"$bytes\": \"AAEC/w==\"}, {\"$map\": {\"$x\": 1}}]"},
      {"ndarray-b64", "{\"$ndarray\": {\"dtype\": \"i32\", \"shape\": [2], "
                      "\"data\": \"AQAAAP////8=\"}}"},
      {"ndarray-list", "{\"$ndarray\": {\"dtype\": \"bool\", \"shape\": [2, 1],"
                       " \"data\": [true, false]}}"},
      {"whitespace", " \t\r\n{ \"a\" :\n[ ]\t, \"b\":{} }\n "},
      {"bad-trailing-comma", "[1, 2,]"},
      {"bad-colon", "{\"a\" 1}"},
      {"bad-surrogate", "\"\\ud800\""},
      {"bad-int-range", "9223372036854775808"},
      {"bad-utf8", "\"\xc3\x28\""},
  };
  for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
    char file[64];
    snprintf(file, sizeof file, "text-%s.json", texts[i][0]);
    write_file("json", file, texts[i][1], strlen(texts[i][1]));
  }
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s CORPUS_DIR (with decode/ and json/)\n", argv[0]);
    return 2;
  }
  out_dir = argv[1];
  seed_values();
  seed_json_texts();
  return 0;
}
