/* tests/test_serial.c: the binary format. Golden encodings pin the bytes so
 * a format change fails on purpose; random nested values round-trip
 * through every path (encode/decode, borrow, dump/load mapped and copied,
 * with and without zstd); hostile inputs (truncations, byte flips, lying
 * lengths, long varints, deep nesting, bad headers) give errors with exact
 * messages; mmap loads are zero-copy and outlive their file; dumps are
 * atomic. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "gen_values.h"
#include "tgraph/serial.h"

/* ---- helpers ------------------------------------------------------------- */

static size_t unhex(const char *hex, uint8_t *out) {
  size_t n = 0;
  for (const char *p = hex; *p;) {
    if (*p == ' ') {
      p++;
      continue;
    }
    unsigned b;
    cr_assert_eq(sscanf(p, "%2x", &b), 1, "bad hex in test: %s", p);
    out[n++] = (uint8_t)b;
    p += 2;
  }
  return n;
}

static void *amalloc(size_t n) {
  void *p = NULL;
  cr_assert_eq(posix_memalign(&p, 64, n ? n : 1), 0);
  return p;
}

static void *encode(const tg_value *v, int level, size_t *len) {
  tg_encode_opts o = {.version = TG_ENCODE_OPTS_V1, .compress = level};
  void *buf = NULL;
  tg_error e;
  int rc = tg_encode(v, &o, &buf, len, &e);
  cr_assert_eq(rc, TG_OK, "encode: %s", e.msg);
  cr_assert_eq((uintptr_t)buf % 64, 0);
  return buf;
}

/* A valid encoding around hand-written meta (hex) and payload bytes: the
 * header's sizes and checksums are computed here, independently of the
 * library, so the decoder's parser sees exactly the bytes under test. */
static uint8_t *seal_ex(const char *meta_hex, const void *pay, size_t plen,
                        uint16_t version, uint16_t flags, size_t *len) {
  uint8_t meta[4096];
  size_t mlen = unhex(meta_hex, meta);
  size_t span = (mlen + 63) / 64 * 64;
  *len = 64 + span + plen;
  uint8_t *b;
  cr_assert_eq(posix_memalign((void **)&b, 64, *len + 1), 0);
  memset(b, 0, *len);
  memcpy(b, "\x89TGV", 4);
  memcpy(b + 4, &version, 2);
  memcpy(b + 6, &flags, 2);
  uint64_t f[5] = {mlen, plen, span + plen, XXH3_64bits(meta, mlen), XXH3_64bits(pay, plen)};
  memcpy(b + 8, f, sizeof f);
  uint64_t hh = XXH3_64bits(b, 48);
  memcpy(b + 48, &hh, 8);
  memcpy(b + 64, meta, mlen);
  if (plen) memcpy(b + 64 + span, pay, plen);
  return b;
}

static uint8_t *seal(const char *meta_hex, size_t *len) {
  return seal_ex(meta_hex, NULL, 0, 1, 0, len);
}

/* Recompute the header checksum after a test edits header fields. */
static void reseal_header(uint8_t *b) {
  uint64_t hh = XXH3_64bits(b, 48);
  memcpy(b + 48, &hh, 8);
}

/* Decode must fail with code and exactly msg, leaving *out NULL. */
static void expect_error(const void *buf, size_t len, int code, const char *msg) {
  tg_value *v = (tg_value *)1;
  tg_error e;
  tg_error_clear(&e);
  int rc = tg_decode(buf, len, &v, &e);
  cr_assert_eq(rc, code, "got %s (%s), want %s", tg_err_name(rc), e.msg, tg_err_name(code));
  cr_assert_null(v);
  cr_assert_eq(e.code, code);
  if (msg) cr_assert_str_eq(e.msg, msg);
}

static void assert_same(const tg_value *a, const tg_value *b) {
  cr_assert(tg_value_equal(a, b));
  cr_assert(tg_digest_equal(tg_value_hash(a), tg_value_hash(b)));
}

static int releases;
static void count_release(void *ctx, void *data) {
  cr_assert_eq(ctx, (void *)&releases);
  releases++;
  free(data);
}

static char tmpdir[64];
static void make_tmpdir(void) {
  strcpy(tmpdir, "/tmp/tg_serial_XXXXXX");
  cr_assert_not_null(mkdtemp(tmpdir));
}
static void rm_tmpdir(void) {
  DIR *d = opendir(tmpdir);
  if (!d) return;
  struct dirent *de;
  char p[512];
  while ((de = readdir(d)))
    if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
      snprintf(p, sizeof p, "%s/%s", tmpdir, de->d_name);
      if (unlink(p) != 0) rmdir(p);
    }
  closedir(d);
  rmdir(tmpdir);
}
static int count_entries(const char *dir) {
  DIR *d = opendir(dir);
  cr_assert_not_null(d);
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)))
    if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
  closedir(d);
  return n;
}

/* ---- golden encodings ---------------------------------------------------- */

/* Check the full encoding: header (hex), meta (hex), zero padding to 64,
 * payload (hex); then that the golden bytes decode back to v. */
static void golden(tg_value *v, const char *hdr, const char *meta, const char *pay) {
  uint8_t want[512];
  size_t n = unhex(hdr, want);
  cr_assert_eq(n, 64);
  size_t m = unhex(meta, want + n);
  n += m;
  while (n % 64) want[n++] = 0;
  n += unhex(pay, want + n);
  size_t len;
  uint8_t *got = encode(v, 0, &len);
  cr_assert_eq(len, n, "length %zu, want %zu", len, n);
  for (size_t i = 0; i < n; i++)
    cr_assert_eq(got[i], want[i], "byte %zu is %02x, want %02x", i, got[i], want[i]);
  tg_value *back;
  cr_assert_eq(tg_decode(want, n, &back, NULL), TG_OK);
  assert_same(back, v);
  tg_value_unref(back);
  free(got);
  tg_value_unref(v);
}

#define HDR(meta_len, pay_len, stored, mh, ph, hh)                          \
  "8954475601000000" meta_len "00000000000000" pay_len "00000000000000" \
      stored "00000000000000" mh ph hh "0000000000000000"
#define NOPAY "c294d3380580062d" /* XXH3-64 of no bytes, little-endian */

Test(serial, golden_scalars) {
  golden(tg_null(), HDR("01", "00", "40", "dbec4e07f4df4bc4", NOPAY, "957aca1502192c56"),
         "00", "");
  golden(tg_bool(true), HDR("01", "00", "40", "ffdf939e6c2ef4c9", NOPAY, "342c1dbb6f659de8"),
         "02", "");
  golden(tg_int(300), HDR("03", "00", "40", "847de6bfd4f2d4c9", NOPAY, "b1bb0c1d5ed7cd40"),
         "03 d804", "");
  golden(tg_int(INT64_MIN),
         HDR("0b", "00", "40", "0f607c1abf373816", NOPAY, "da4c96c812eb72b4"),
         "03 ffffffffffffffffff01", "");
  golden(tg_float(1.5), HDR("09", "00", "40", "5d70b604a57ceb1f", NOPAY, "33516a033fd4b4d5"),
         "04 000000000000f83f", "");
  golden(tg_str_c("h\xc3\xa9llo"),
         HDR("08", "00", "40", "96679b493c0fbe8a", NOPAY, "9f32807ef67e64ec"),
         "05 06 68c3a96c6c6f", "");
}

Test(serial, golden_containers_and_array) {
  int32_t d[6] = {0, 1, 2, 3, 4, 5};
  int64_t shape[2] = {2, 3};
  golden(tg_ndarray_copy(TG_DT_I32, 2, shape, d),
         HDR("06", "18", "58", "345fe66b95a02548", "54582d2debab3259", "38df1db9e3fe7715"),
         "08 04 02 02 03 00", "000000000100000002000000030000000400000005000000");
  golden(tg_list_of(3, tg_int(1), tg_str_c("a"), tg_null()),
         HDR("08", "00", "40", "1aa1484e9b2653a7", NOPAY, "5e3a0c8fafe210c5"),
         "09 03 0302 050161 00", "");
  golden(tg_list_of(3, tg_int(1), tg_int(2), tg_int(-3)),
         HDR("05", "00", "40", "b7066e24c0985dfa", NOPAY, "d5c2b12ce7753863"),
         "0a 03 02 04 05", "");
  tg_value *m = tg_map_new(0);
  cr_assert_eq(tg_map_put_c(m, "a", tg_int(1)), TG_OK);
  cr_assert_eq(tg_map_put_c(m, "b", tg_list_of(1, tg_bool(true))), TG_OK);
  golden(m, HDR("0b", "00", "40", "b2c0baa88de29d38", NOPAY, "88adbcab3de571bc"),
         "0b 02 0161 0302 0162 090102", "");
}

/* Meta bytes only, for values whose hashes need not be pinned twice. */
static void golden_meta(tg_value *v, const char *meta) {
  uint8_t want[256];
  size_t m = unhex(meta, want), len;
  uint8_t *got = encode(v, 0, &len);
  uint64_t meta_len;
  memcpy(&meta_len, got + 8, 8);
  cr_assert_eq(meta_len, m);
  cr_assert_arr_eq(got + 64, want, m);
  free(got);
  tg_value_unref(v);
}

Test(serial, golden_meta_bytes) {
  golden_meta(tg_bool(false), "01");
  golden_meta(tg_int(-1), "03 01");
  golden_meta(tg_int(INT64_MAX), "03 feffffffffffffffff01");
  golden_meta(tg_int(INT64_C(1) << 62), "03 8080808080808080 8001"); /* boxed int */
  golden_meta(tg_bytes("\x00\x01\xff", 3), "06 03 0001ff");
  golden_meta(tg_list_of(0), "09 00");
  golden_meta(tg_map_new(0), "0b 00");
  golden_meta(tg_list_of(2, tg_list_of(0), tg_map_new(0)), "09 02 0900 0b00");
  /* nested: {"x": [1.0, [2, 3]], "y": {"": b""}} */
  tg_value *inner = tg_map_new(0);
  cr_assert_eq(tg_map_put(inner, "", 0, tg_bytes("", 0)), TG_OK);
  tg_value *m = tg_map_new(0);
  cr_assert_eq(tg_map_put_c(m, "x", tg_list_of(2, tg_float(1.0),
                                               tg_list_of(2, tg_int(2), tg_int(3)))),
               TG_OK);
  cr_assert_eq(tg_map_put_c(m, "y", inner), TG_OK);
  golden_meta(m, "0b 02 0178 09 02 04000000000000f03f 0a020406 0179 0b01 00 0600");
}

Test(serial, golden_bytes_ext_and_payload_layout) {
  /* bytes >= 4096 go to the payload; arrays follow at 64-aligned offsets */
  uint8_t *big = malloc(4096);
  for (int i = 0; i < 4096; i++) big[i] = (uint8_t)(i * 7);
  uint8_t three[3] = {9, 8, 7};
  int64_t shape = 3;
  tg_value *v = tg_list_of(3, tg_bytes(big, 4096), tg_ndarray_copy(TG_DT_U8, 1, &shape, three),
                           tg_bytes(big, 4095));
  size_t len;
  uint8_t *got = encode(v, 0, &len);
  uint8_t want[16];
  size_t m = unhex("09 03 07 8020 00 08 06 01 03 8020", want);
  cr_assert_arr_eq(got + 64, want, m);
  cr_assert_eq(got[64 + m], 0x06); /* inline bytes of 4095 */
  uint64_t meta_len, pay_len;
  memcpy(&meta_len, got + 8, 8);
  memcpy(&pay_len, got + 16, 8);
  cr_assert_eq(meta_len, m + 1 + 2 + 4095);
  cr_assert_eq(pay_len, 4096 + 3);
  size_t pay = 64 + (meta_len + 63) / 64 * 64;
  cr_assert_eq(len, pay + pay_len);
  cr_assert_arr_eq(got + pay, big, 4096);
  cr_assert_arr_eq(got + pay + 4096, three, 3);
  free(got);
  free(big);
  tg_value_unref(v);
}

/* ---- round trips --------------------------------------------------------- */

static void roundtrip_memory(tg_value *v, int level) {
  size_t len;
  uint8_t *buf = encode(v, level, &len);
  uint16_t flags;
  memcpy(&flags, buf + 6, 2);
  cr_assert_eq(flags, level ? 1 : 0);
  tg_value *a;
  tg_error e;
  cr_assert_eq(tg_decode(buf, len, &a, &e), TG_OK, "decode: %s", e.msg);
  assert_same(a, v);
  tg_value_unref(a);
  releases = 0;
  cr_assert_eq(tg_decode_borrow(buf, len, count_release, &releases, &a, &e), TG_OK,
               "decode_borrow: %s", e.msg);
  assert_same(a, v);
  tg_value_unref(a);
  cr_assert_eq(releases, 1);
}

Test(serial, roundtrip_random_values_in_memory) {
  uint64_t rng = 42;
  for (int i = 0; i < 3000; i++) {
    tg_value *v = tg_test_random_value(&rng, 3);
    cr_assert_not_null(v);
    roundtrip_memory(v, 0);
    if (i % 10 == 0) roundtrip_memory(v, 1 + i % 3);
    tg_value_unref(v);
  }
}

static void roundtrip_file(tg_value *v, const char *path, int level, unsigned flags) {
  tg_encode_opts o = {.version = TG_ENCODE_OPTS_V1, .compress = level};
  tg_error e;
  cr_assert_eq(tg_dump(v, path, &o, &e), TG_OK, "dump: %s", e.msg);
  tg_value *a;
  cr_assert_eq(tg_load(path, flags, &a, &e), TG_OK, "load: %s", e.msg);
  assert_same(a, v);
  tg_value_unref(a);
}

Test(serial, roundtrip_random_values_through_files, .init = make_tmpdir, .fini = rm_tmpdir) {
  char path[128];
  snprintf(path, sizeof path, "%s/v.tgv", tmpdir);
  uint64_t rng = 7;
  for (int i = 0; i < 400; i++) {
    tg_value *v = tg_test_random_value(&rng, 3);
    cr_assert_not_null(v);
    static const unsigned flags[] = {0, TG_LOAD_MMAP, TG_LOAD_MMAP | TG_LOAD_VERIFY};
    roundtrip_file(v, path, (i % 4 == 3) ? 3 : 0, flags[i % 3]);
    tg_value_unref(v);
  }
  cr_assert_eq(count_entries(tmpdir), 1, "no temporary files are left");
}

Test(serial, roundtrip_large_values_and_big_arrays, .init = make_tmpdir, .fini = rm_tmpdir) {
  /* Over the 1 MiB thresholds (huge-page copies, mapped reads); the array
   * is not a multiple of 64 bytes, so a gap precedes the bytes. */
  int64_t n = 300001;
  tg_value *arr = tg_ndarray_new(TG_DT_F64, 1, &n);
  double *d = tg_ndarray_data_mut(arr);
  for (int64_t i = 0; i < n; i++) d[i] = (double)i * 0.25;
  uint8_t *blob = malloc(5000000);
  for (size_t i = 0; i < 5000000; i++) blob[i] = (uint8_t)(i * 31 + (i >> 9));
  tg_value *v = tg_list_of(3, arr, tg_bytes(blob, 5000000), tg_str_c("tail"));
  free(blob);
  roundtrip_memory(v, 0);
  roundtrip_memory(v, 1);
  char path[128];
  snprintf(path, sizeof path, "%s/big.tgv", tmpdir);
  /* the streamed dump writes exactly the bytes tg_encode builds */
  cr_assert_eq(tg_dump(v, path, NULL, NULL), TG_OK);
  size_t len;
  uint8_t *enc = encode(v, 0, &len);
  FILE *f = fopen(path, "rb");
  uint8_t *file = malloc(len + 1);
  cr_assert_eq(fread(file, 1, len + 1, f), len);
  fclose(f);
  cr_assert_eq(memcmp(file, enc, len), 0);
  free(file);
  free(enc);
  roundtrip_file(v, path, 0, 0);
  roundtrip_file(v, path, 0, TG_LOAD_MMAP);
  roundtrip_file(v, path, 0, TG_LOAD_MMAP | TG_LOAD_VERIFY);
  roundtrip_file(v, path, 5, 0);
  roundtrip_file(v, path, 5, TG_LOAD_MMAP);
  tg_value_unref(v);
}

Test(serial, int_list_of_a_million) {
  tg_value *l = tg_list_alloc(1000000);
  for (size_t i = 0; i < 1000000; i++)
    cr_assert_eq(tg_list_init_item(l, i, tg_int((int64_t)(i * 2654435761u) - 2000000000)), TG_OK);
  size_t len;
  uint8_t *buf = encode(l, 0, &len);
  cr_assert_eq(buf[64], 0x0A);
  tg_value *back;
  cr_assert_eq(tg_decode(buf, len, &back, NULL), TG_OK);
  assert_same(back, l);
  tg_value_unref(back);
  free(buf);
  tg_value_unref(l);
}

Test(serial, decoded_depth_is_tracked) {
  /* 512 nested lists decode; the result cannot be nested once more. */
  char meta[512 * 5 + 8] = "";
  for (int i = 0; i < 511; i++) strcat(meta, "0901 ");
  strcat(meta, "0900");
  size_t len;
  uint8_t *b = seal(meta, &len);
  tg_value *v;
  cr_assert_eq(tg_decode(b, len, &v, NULL), TG_OK);
  cr_assert_null(tg_list_of(1, tg_value_ref(v)));
  tg_value *m = tg_map_new(0);
  cr_assert_eq(tg_map_put_c(m, "k", v), TG_EDEPTH);
  tg_value_unref(m);
  free(b);
}

/* ---- hostile input ------------------------------------------------------- */

static tg_value *sample_value(void) {
  int64_t shape[2] = {3, 4};
  tg_value *arr = tg_ndarray_new(TG_DT_F32, 2, shape);
  float *f = tg_ndarray_data_mut(arr);
  for (int i = 0; i < 12; i++) f[i] = (float)i / 3.0f;
  uint8_t big[5000];
  for (int i = 0; i < 5000; i++) big[i] = (uint8_t)i;
  tg_value *m = tg_map_new(0);
  cr_assert_eq(tg_map_put_c(m, "array", arr), TG_OK);
  cr_assert_eq(tg_map_put_c(m, "ints", tg_list_of(3, tg_int(-5), tg_int(INT64_MAX), tg_int(0))),
               TG_OK);
  cr_assert_eq(tg_map_put_c(m, "mixed", tg_list_of(4, tg_float(2.5), tg_str_c("\xe2\x82\xac"),
                                                   tg_null(), tg_bool(false))),
               TG_OK);
  cr_assert_eq(tg_map_put_c(m, "blob", tg_bytes(big, sizeof big)), TG_OK);
  cr_assert_eq(tg_map_put_c(m, "small", tg_bytes("xyz", 3)), TG_OK);
  return m;
}

Test(serial, every_truncation_is_an_error) {
  tg_value *v = sample_value();
  for (int level = 0; level <= 3; level += 3) {
    size_t len;
    uint8_t *buf = encode(v, level, &len);
    for (size_t n = 0; n < len; n++) {
      tg_value *out = (tg_value *)1;
      cr_assert_lt(tg_decode(buf, n, &out, NULL), 0, "length %zu decoded", n);
      cr_assert_null(out);
      releases = 0;
      uint8_t *copy = amalloc(len + 64);
      memcpy(copy, buf, n);
      cr_assert_lt(tg_decode_borrow(copy, n, count_release, &releases, &out, NULL), 0);
      cr_assert_eq(releases, 1, "the buffer is released at once on failure");
    }
    free(buf);
  }
  tg_value_unref(v);
}

/* Decode after a mutation: an error, or a value that is sound (it
 * re-encodes and equals itself). Never a crash, never a leak (ASan). */
static int decode_any(const uint8_t *buf, size_t len) {
  tg_value *v = (tg_value *)1;
  tg_error e;
  int rc = tg_decode(buf, len, &v, &e);
  if (rc != TG_OK) {
    cr_assert_null(v);
    cr_assert_eq(e.code, rc);
    return rc;
  }
  cr_assert(tg_value_equal(v, v));
  size_t n;
  free(encode(v, 0, &n));
  tg_value_unref(v);
  return rc;
}

Test(serial, random_byte_flips) {
  tg_value *v = sample_value();
  size_t len;
  uint8_t *orig = encode(v, 0, &len);
  uint8_t *buf = malloc(len);
  uint64_t rng = 99;
  int ok = 0, checksum = 0;
  for (int i = 0; i < 10000; i++) {
    memcpy(buf, orig, len);
    size_t at = (size_t)tg_test_below(&rng, len);
    buf[at] ^= (uint8_t)(1 + tg_test_below(&rng, 255));
    int rc = decode_any(buf, len);
    ok += rc == TG_OK;
    checksum += rc == TG_ECHECKSUM;
  }
  /* Only the payload's alignment gaps are not covered by a checksum... and
   * even those are (payload hash), so every flip is caught. */
  cr_assert_eq(ok, 0);
  cr_assert_gt(checksum, 9000);
  free(buf);
  free(orig);
  tg_value_unref(v);
}

/* Flips inside the meta section with the checksums recomputed, so the
 * parser itself faces the damage. */
Test(serial, random_meta_flips_with_valid_checksums) {
  tg_value *v = sample_value();
  size_t len;
  uint8_t *orig = encode(v, 0, &len);
  uint64_t meta_len;
  memcpy(&meta_len, orig + 8, 8);
  uint8_t *buf = malloc(len);
  uint64_t rng = 1234;
  int errors = 0;
  for (int i = 0; i < 10000; i++) {
    memcpy(buf, orig, len);
    int flips = 1 + (int)tg_test_below(&rng, 3);
    for (int k = 0; k < flips; k++)
      buf[64 + tg_test_below(&rng, meta_len)] ^= (uint8_t)(1 + tg_test_below(&rng, 255));
    uint64_t mh = XXH3_64bits(buf + 64, meta_len);
    memcpy(buf + 32, &mh, 8);
    reseal_header(buf);
    errors += decode_any(buf, len) != TG_OK;
  }
  cr_assert_gt(errors, 1000);
  cr_assert_lt(errors, 10000, "some flips (in ints, floats, text) still decode");
  free(buf);
  free(orig);
  tg_value_unref(v);
}

Test(serial, lying_lengths_and_counts) {
  size_t len;
  uint8_t *b;
  /* list of 1,000,000 items with 12 bytes left after the count */
  b = seal("09 c0843d 000000000000000000000000", &len);
  expect_error(b, len, TG_EFORMAT, "list count 1000000 exceeds the 12 bytes left at offset 65");
  free(b);
  b = seal("0a ffffffffffffffff7f 00", &len);
  expect_error(b, len, TG_EFORMAT,
               "int-list count 9223372036854775807 exceeds the 1 bytes left at offset 65");
  free(b);
  b = seal("0b 02 0161 00", &len); /* two entries need at least 4 bytes */
  expect_error(b, len, TG_EFORMAT, "map count 2 exceeds the 3 bytes left at offset 65");
  free(b);
  b = seal("05 8080808080808080 10 61", &len); /* str of 2^60 bytes */
  expect_error(b, len, TG_EFORMAT,
               "str length 1152921504606846976 exceeds the 1 bytes left at offset 65");
  free(b);
  b = seal("06 05 0102", &len);
  expect_error(b, len, TG_EFORMAT, "bytes length 5 exceeds the 2 bytes left at offset 65");
  free(b);
  b = seal("0b 01 05 6b6579 00", &len);
  expect_error(b, len, TG_EFORMAT, "map key length 5 exceeds the 4 bytes left at offset 66");
  free(b);
  b = seal("07 ffffffffffffffffff01 00", &len); /* bytes-ext of 2^64-1 bytes */
  expect_error(b, len, TG_EFORMAT,
               "bytes of 18446744073709551615 bytes at payload offset 0 runs past the "
               "0-byte payload at offset 75");
  free(b);
  uint8_t pay[128] = {0};
  b = seal_ex("08 0b 01 11 40", pay, 128, 1, 0, &len); /* 17 f64 at 64: 136 bytes */
  expect_error(b, len, TG_EFORMAT,
               "ndarray of 136 bytes at payload offset 64 runs past the 128-byte payload "
               "at offset 68");
  free(b);
  b = seal_ex("08 0b 01 01 08", pay, 128, 1, 0, &len);
  expect_error(b, len, TG_EFORMAT,
               "ndarray payload offset 8 is not a multiple of 64 at offset 68");
  free(b);
  /* dims whose product overflows */
  b = seal("08 06 02 ffffffffffffffff7f ffffffffffffffff7f 00", &len);
  expect_error(b, len, TG_EFORMAT, "ndarray shape overflows at offset 65");
  free(b);
  b = seal("08 06 01 ffffffffffffffffff01 00", &len);
  expect_error(b, len, TG_EFORMAT,
               "ndarray dimension 18446744073709551615 is too large at offset 67");
  free(b);
  b = seal("08 0c 00 00", &len);
  expect_error(b, len, TG_EFORMAT, "unknown dtype 12 at offset 65");
  free(b);
  b = seal("08 01 21", &len);
  expect_error(b, len, TG_EFORMAT, "ndim 33 exceeds 32 at offset 66");
  free(b);
  b = seal("08", &len);
  expect_error(b, len, TG_EFORMAT, "ndarray needs dtype and ndim, 0 bytes left at offset 65");
  free(b);
  b = seal("00", &len);
  uint64_t huge = UINT64_MAX - 10;
  memcpy(b + 8, &huge, 8);
  reseal_header(b);
  expect_error(b, len, TG_EFORMAT,
               "meta length 18446744073709551605 and payload length 0 overflow at offset 8");
  free(b);
  b = seal("04 0000", &len);
  expect_error(b, len, TG_EFORMAT, "float needs 8 bytes, 2 left at offset 65");
  free(b);
}

Test(serial, varints) {
  size_t len;
  uint8_t *b;
  b = seal("03 ffffffffffffffffff8001", &len); /* 11 bytes */
  expect_error(b, len, TG_EFORMAT, "int: varint longer than 10 bytes at offset 65");
  free(b);
  b = seal("03 ffffffffffffffffff02", &len); /* bit 64 set */
  expect_error(b, len, TG_EFORMAT, "int: varint overflows 64 bits at offset 65");
  free(b);
  b = seal("03 8000", &len);
  expect_error(b, len, TG_EFORMAT, "int: varint is not minimal at offset 65");
  free(b);
  b = seal("09 ff", &len);
  expect_error(b, len, TG_EFORMAT,
               "list: varint runs past the end of the meta section at offset 65");
  free(b);
  /* the longest legal varints decode */
  b = seal("0a 02 ffffffffffffffffff01 feffffffffffffffff01", &len);
  tg_value *v;
  cr_assert_eq(tg_decode(b, len, &v, NULL), TG_OK);
  cr_assert_eq(tg_value_int(tg_list_get(v, 0)), INT64_MIN);
  cr_assert_eq(tg_value_int(tg_list_get(v, 1)), INT64_MAX);
  tg_value_unref(v);
  free(b);
}

Test(serial, deep_nesting) {
  /* 100,000 nested list tags stop at the depth limit, not the stack.
   * seal() takes at most 4096 bytes of meta: this one is built by hand. */
  size_t n = 100000, mlen = n * 2 + 1, span = (mlen + 63) / 64 * 64, len = 64 + span;
  uint8_t *b = amalloc(len);
  memset(b, 0, len);
  for (size_t i = 0; i < n; i++) memcpy(b + 64 + 2 * i, "\x09\x01", 2);
  memcpy(b, "\x89TGV\x01\x00\x00\x00", 8);
  uint64_t f[5] = {mlen, 0, span, XXH3_64bits(b + 64, mlen), XXH3_64bits(NULL, 0)};
  memcpy(b + 8, f, sizeof f);
  reseal_header(b);
  /* the 513th list starts at meta byte 1024 */
  expect_error(b, len, TG_EDEPTH, "lists and maps nested deeper than 512 levels at offset 1088");
  free(b);
  /* maps count as nesting too: {"": {"": ...}} */
  char m2[600 * 7 + 4] = "";
  for (int i = 0; i < 600; i++) strcat(m2, "0b0100 ");
  strcat(m2, "00");
  b = seal(m2, &len);
  expect_error(b, len, TG_EDEPTH, "lists and maps nested deeper than 512 levels at offset 1600");
  free(b);
}

Test(serial, bad_headers) {
  size_t len;
  uint8_t *b = seal("00", &len);
  expect_error(b, 10, TG_EFORMAT, "input of 10 bytes is shorter than the 64-byte header");
  b[0] = 'P';
  expect_error(b, len, TG_EFORMAT, "bad magic 50 54 47 56, not a tgraph encoding at offset 0");
  free(b);
  b = seal_ex("00", NULL, 0, 2, 0, &len);
  expect_error(b, len, TG_EVERSION,
               "format version 2 is not supported (this build reads 1) at offset 4");
  free(b);
  b = seal_ex("00", NULL, 0, 1, 4, &len);
  expect_error(b, len, TG_EFORMAT, "unknown flags 0x0004 at offset 6");
  free(b);
  b = seal("00", &len);
  b[57] = 1;
  reseal_header(b);
  expect_error(b, len, TG_EFORMAT, "reserved header field is not zero at offset 56");
  free(b);
  b = seal("00", &len);
  b[16] = 1; /* payload_len 1 without rehashing the header */
  expect_error(b, len, TG_ECHECKSUM, NULL);
  cr_assert_eq(b[0], 0x89);
  reseal_header(b);
  expect_error(b, len, TG_EFORMAT,
               "stored length 64 is not meta 1 + padding + payload 1 at offset 24");
  free(b);
  b = seal("00", &len);
  expect_error(b, len - 1, TG_EFORMAT, "header declares 64 stored bytes but 63 follow it at offset 24");
  memset(b + 8, 0, 8); /* meta_len 0 */
  reseal_header(b);
  expect_error(b, len, TG_EFORMAT, "meta section is empty at offset 8");
  free(b);
}

Test(serial, malformed_meta) {
  size_t len;
  uint8_t *b;
  b = seal("00 00", &len);
  expect_error(b, len, TG_EFORMAT, "1 bytes follow the value in the meta section at offset 65");
  free(b);
  b = seal("00", &len);
  b[65] = 1; /* padding is not covered by a checksum, so it must be zero */
  expect_error(b, len, TG_EFORMAT, "padding after the meta section is not zero at offset 65");
  free(b);
  b = seal("0c", &len);
  expect_error(b, len, TG_EFORMAT, "unknown tag 0x0c at offset 64");
  free(b);
  b = seal("09 02 0900", &len); /* the count fits, the second item is missing */
  expect_error(b, len, TG_EFORMAT, "meta section ends where a value should start at offset 68");
  free(b);
  b = seal("05 02 c328", &len);
  expect_error(b, len, TG_EFORMAT, "str of 2 bytes is not valid UTF-8 at offset 66");
  free(b);
  b = seal("05 03 eda080", &len); /* a surrogate */
  expect_error(b, len, TG_EFORMAT, "str of 3 bytes is not valid UTF-8 at offset 66");
  free(b);
  b = seal("0b 01 01 ff 00", &len);
  expect_error(b, len, TG_EFORMAT, "map key is not valid UTF-8 at offset 67");
  free(b);
  b = seal("0b 02 0161 00 0161 01", &len);
  expect_error(b, len, TG_EFORMAT, "duplicate map key \"a\" at offset 69");
  free(b);
}

Test(serial, checksums) {
  size_t len;
  uint8_t pay[64];
  memset(pay, 7, sizeof pay);
  uint8_t *b = seal_ex("08 06 01 40 00", pay, 64, 1, 0, &len);
  tg_value *v;
  cr_assert_eq(tg_decode(b, len, &v, NULL), TG_OK);
  tg_value_unref(v);
  b[64 + 64 + 5] ^= 1; /* payload */
  tg_error e;
  cr_assert_eq(tg_decode(b, len, &v, &e), TG_ECHECKSUM);
  cr_assert_eq(strncmp(e.msg, "payload checksum ", 17), 0, "%s", e.msg);
  cr_assert_eq(e.offset, 128);
  b[64 + 64 + 5] ^= 1;
  b[66] ^= 1; /* meta */
  cr_assert_eq(tg_decode(b, len, &v, &e), TG_ECHECKSUM);
  cr_assert_eq(strncmp(e.msg, "meta section checksum ", 22), 0, "%s", e.msg);
  cr_assert_eq(e.offset, 64);
  cr_assert(e.has_offset);
  free(b);
}

Test(serial, hostile_compressed_bodies) {
  tg_value *v = sample_value();
  size_t len;
  uint8_t *orig = encode(v, 3, &len);
  uint8_t *b = malloc(len);
  uint64_t meta_len, stored;
  memcpy(&meta_len, orig + 8, 8);
  memcpy(&stored, orig + 24, 8);
  uint64_t span = (meta_len + 63) / 64 * 64;
  char want[256];

  memcpy(b, orig, len);
  uint64_t pl = UINT64_C(65) << 30;
  memcpy(b + 16, &pl, 8);
  reseal_header(b);
  snprintf(want, sizeof want,
           "compressed body declares %" PRIu64 " bytes, more than the 68719476736 allowed at offset 8",
           span + pl);
  expect_error(b, len, TG_ELIMIT, want);

  pl = (stored + 1) * 32768;
  memcpy(b + 16, &pl, 8);
  reseal_header(b);
  snprintf(want, sizeof want,
           "compressed body declares %" PRIu64 " bytes, more than zstd can expand %" PRIu64
           " bytes to at offset 8",
           span + pl, stored);
  expect_error(b, len, TG_EFORMAT, want);

  uint64_t real_pl;
  memcpy(&real_pl, orig + 16, 8);
  pl = real_pl + 64;
  memcpy(b + 16, &pl, 8);
  reseal_header(b);
  snprintf(want, sizeof want,
           "zstd frame holds %" PRIu64 " bytes but the header declares %" PRIu64 " at offset 64",
           span + real_pl, span + pl);
  expect_error(b, len, TG_EFORMAT, want);

  /* flags say zstd, body is not */
  free(b);
  b = seal_ex("00", NULL, 0, 1, 1, &len);
  expect_error(b, len, TG_EFORMAT, "body is not a zstd frame at offset 64");
  free(b);

  /* random damage to the frame: errors, never crashes */
  len = (size_t)(64 + stored);
  b = malloc(len);
  uint64_t rng = 5;
  for (int i = 0; i < 2000; i++) {
    memcpy(b, orig, len);
    b[64 + tg_test_below(&rng, stored)] ^= (uint8_t)(1 + tg_test_below(&rng, 255));
    decode_any(b, len);
  }
  free(b);
  free(orig);
  tg_value_unref(v);
}

/* ---- borrowing ----------------------------------------------------------- */

static bool inside(const void *p, const void *base, size_t len) {
  return (const char *)p >= (const char *)base && (const char *)p < (const char *)base + len;
}

Test(serial, decode_borrow_points_into_the_buffer) {
  int64_t n = 1000;
  tg_value *arr = tg_ndarray_new(TG_DT_F64, 1, &n);
  uint8_t big[5000] = {1, 2, 3};
  tg_value *v = tg_list_of(2, arr, tg_bytes(big, sizeof big));
  size_t len;
  uint8_t *buf = encode(v, 0, &len);
  tg_value *a;
  releases = 0;
  cr_assert_eq(tg_decode_borrow(buf, len, count_release, &releases, &a, NULL), TG_OK);
  cr_assert(inside(tg_ndarray_data(tg_list_get(a, 0)), buf, len));
  cr_assert(inside(tg_bytes_data(tg_list_get(a, 1), NULL), buf, len));
  cr_assert_eq((uintptr_t)tg_ndarray_data(tg_list_get(a, 0)) % 64, 0);
  tg_value *keep = tg_value_ref(tg_list_get(a, 1));
  tg_value_unref(a);
  cr_assert_eq(releases, 0, "the bytes still borrow the buffer");
  tg_value_unref(keep);
  cr_assert_eq(releases, 1);

  /* tg_decode copies: the buffer can go at once */
  buf = encode(v, 0, &len);
  cr_assert_eq(tg_decode(buf, len, &a, NULL), TG_OK);
  cr_assert(!inside(tg_ndarray_data(tg_list_get(a, 0)), buf, len));
  memset(buf, 0xEE, len);
  free(buf);
  assert_same(a, v);
  tg_value_unref(a);

  /* nothing to borrow, compressed, or failing: released before returning */
  tg_value *small = tg_list_of(2, tg_int(1), tg_str_c("x"));
  buf = encode(small, 0, &len);
  releases = 0;
  cr_assert_eq(tg_decode_borrow(buf, len, count_release, &releases, &a, NULL), TG_OK);
  cr_assert_eq(releases, 1);
  tg_value_unref(a);
  int64_t zero = 0;
  tg_value *empty = tg_ndarray_new(TG_DT_F64, 1, &zero);
  buf = encode(empty, 0, &len);
  cr_assert_eq(tg_decode_borrow(buf, len, count_release, &releases, &a, NULL), TG_OK);
  cr_assert_eq(releases, 2, "empty arrays borrow nothing");
  assert_same(a, empty);
  tg_value_unref(a);
  tg_value_unref(empty);
  buf = encode(v, 1, &len);
  cr_assert_eq(tg_decode_borrow(buf, len, count_release, &releases, &a, NULL), TG_OK);
  cr_assert_eq(releases, 3);
  assert_same(a, v);
  tg_value_unref(a);
  buf = encode(small, 0, &len);
  uint8_t *odd = malloc(len + 64);
  uint8_t *mis = odd + (64 - (uintptr_t)odd % 64) % 64 + 8; /* 8 past a 64 boundary */
  memcpy(mis, buf, len);
  free(buf);
  tg_error e;
  cr_assert_eq(tg_decode_borrow(mis, len, NULL, NULL, &a, &e), TG_EINVAL);
  cr_assert_str_eq(e.msg, "buffer is not 64-byte aligned");
  cr_assert_null(a);
  free(odd);
  tg_value_unref(small);
  tg_value_unref(v);
}

/* ---- files --------------------------------------------------------------- */

/* The /proc/self/maps line whose range holds p, or "" if none. */
static void mapping_of(const void *p, char *line, size_t cap) {
  FILE *f = fopen("/proc/self/maps", "r");
  cr_assert_not_null(f);
  line[0] = '\0';
  char buf[1024];
  while (fgets(buf, sizeof buf, f)) {
    uintptr_t lo, hi;
    if (sscanf(buf, "%" SCNxPTR "-%" SCNxPTR, &lo, &hi) == 2 && (uintptr_t)p >= lo &&
        (uintptr_t)p < hi) {
      snprintf(line, cap, "%s", buf);
      break;
    }
  }
  fclose(f);
}

static tg_value *big_array(int64_t n, double scale) {
  tg_value *a = tg_ndarray_new(TG_DT_F64, 1, &n);
  double *d = tg_ndarray_data_mut(a);
  for (int64_t i = 0; i < n; i++) d[i] = (double)i * scale;
  return a;
}

Test(serial, mmap_load_is_zero_copy_and_outlives_the_file, .init = make_tmpdir,
     .fini = rm_tmpdir) {
  char path[128], line[1024];
  snprintf(path, sizeof path, "%s/arr.tgv", tmpdir);
  tg_value *v = tg_list_of(2, tg_str_c("meta"), big_array(1 << 20, 0.5));
  cr_assert_eq(tg_dump(v, path, NULL, NULL), TG_OK);
  tg_value *a;
  cr_assert_eq(tg_load(path, TG_LOAD_MMAP, &a, NULL), TG_OK);
  const double *d = tg_ndarray_data(tg_list_get(a, 1));
  mapping_of(d, line, sizeof line);
  cr_assert_neq(strstr(line, path), NULL, "array data is in the file mapping: %s", line);
  cr_assert_eq((uintptr_t)d % 64, 0);
  cr_assert_eq(unlink(path), 0);
  mapping_of(d, line, sizeof line);
  cr_assert_neq(strstr(line, "(deleted)"), NULL, "%s", line);
  assert_same(a, v); /* readable after the file and the loader are gone */
  cr_assert_eq(d[12345], 12345 * 0.5);
  tg_value_unref(a);
  mapping_of(d, line, sizeof line);
  cr_assert_eq(strstr(line, path), NULL, "unmapped with the last value: %s", line);

  /* copied loads keep no mapping */
  cr_assert_eq(tg_dump(v, path, NULL, NULL), TG_OK);
  cr_assert_eq(tg_load(path, 0, &a, NULL), TG_OK);
  mapping_of(tg_ndarray_data(tg_list_get(a, 1)), line, sizeof line);
  cr_assert_eq(strstr(line, path), NULL, "%s", line);
  tg_value_unref(a);
  /* compressed files are read even with TG_LOAD_MMAP */
  tg_encode_opts o = {.version = TG_ENCODE_OPTS_V1, .compress = 1};
  cr_assert_eq(tg_dump(v, path, &o, NULL), TG_OK);
  cr_assert_eq(tg_load(path, TG_LOAD_MMAP, &a, NULL), TG_OK);
  mapping_of(tg_ndarray_data(tg_list_get(a, 1)), line, sizeof line);
  cr_assert_eq(strstr(line, path), NULL, "%s", line);
  assert_same(a, v);
  tg_value_unref(a);
  tg_value_unref(v);
}

Test(serial, load_checks_payload_unless_mapped_without_verify, .init = make_tmpdir,
     .fini = rm_tmpdir) {
  char path[128];
  snprintf(path, sizeof path, "%s/arr.tgv", tmpdir);
  tg_value *v = big_array(4096, 1.0);
  cr_assert_eq(tg_dump(v, path, NULL, NULL), TG_OK);
  struct stat st;
  cr_assert_eq(stat(path, &st), 0);
  int fd = open(path, O_WRONLY);
  cr_assert_eq(pwrite(fd, "X", 1, st.st_size - 1), 1); /* damage the payload */
  close(fd);
  tg_value *a;
  tg_error e;
  cr_assert_eq(tg_load(path, 0, &a, &e), TG_ECHECKSUM);
  char want[300];
  snprintf(want, sizeof want, "%s: payload checksum ", path);
  cr_assert_eq(strncmp(e.msg, want, strlen(want)), 0, "%s", e.msg);
  cr_assert_eq(tg_load(path, TG_LOAD_MMAP | TG_LOAD_VERIFY, &a, &e), TG_ECHECKSUM);
  cr_assert_eq(tg_load(path, TG_LOAD_MMAP, &a, &e), TG_OK, "mapped: payload not read");
  cr_assert_eq(((const uint8_t *)tg_ndarray_data(a))[4096 * 8 - 1], 'X');
  tg_value_unref(a);
  fd = open(path, O_WRONLY);
  cr_assert_eq(pwrite(fd, "\x07", 1, 65), 1); /* damage the meta section */
  close(fd);
  cr_assert_eq(tg_load(path, TG_LOAD_MMAP, &a, &e), TG_ECHECKSUM, "meta is always checked");
  tg_value_unref(v);
}

Test(serial, load_errors, .init = make_tmpdir, .fini = rm_tmpdir) {
  char path[128], want[400];
  tg_value *a;
  tg_error e;
  snprintf(path, sizeof path, "%s/missing.tgv", tmpdir);
  cr_assert_eq(tg_load(path, 0, &a, &e), TG_ENOENT);
  snprintf(want, sizeof want, "cannot open '%s': No such file or directory", path);
  cr_assert_str_eq(e.msg, want);
  cr_assert_null(a);
  snprintf(path, sizeof path, "%s/short.tgv", tmpdir);
  FILE *f = fopen(path, "w");
  fputs("0123456789", f);
  fclose(f);
  for (unsigned flags = 0; flags <= TG_LOAD_MMAP; flags += TG_LOAD_MMAP) {
    cr_assert_eq(tg_load(path, flags, &a, &e), TG_EFORMAT);
    snprintf(want, sizeof want, "%s: file of 10 bytes is shorter than the 64-byte header", path);
    cr_assert_str_eq(e.msg, want);
  }
  f = fopen(path, "w");
  for (int i = 0; i < 10; i++) fputs("not a tgraph file\n", f);
  fclose(f);
  for (unsigned flags = 0; flags <= TG_LOAD_MMAP; flags += TG_LOAD_MMAP) {
    cr_assert_eq(tg_load(path, flags, &a, &e), TG_EFORMAT);
    snprintf(want, sizeof want, "%s: bad magic 6e 6f 74 20, not a tgraph encoding at offset 0",
             path);
    cr_assert_str_eq(e.msg, want);
    cr_assert_eq(e.offset, 0);
  }
  cr_assert_eq(tg_load(tmpdir, 0, &a, &e), TG_EINVAL);
  snprintf(want, sizeof want, "'%s' is not a regular file", tmpdir);
  cr_assert_str_eq(e.msg, want);
  cr_assert_eq(tg_load(path, 4, &a, &e), TG_EINVAL);
}

/* A FIFO is refused like any other non-regular file, at once: opening
 * it must not wait for a writer that never comes. */
Test(serial, load_refuses_a_fifo_without_waiting, .init = make_tmpdir, .fini = rm_tmpdir) {
  char path[128], want[200];
  snprintf(path, sizeof path, "%s/fifo", tmpdir);
  cr_assert_eq(mkfifo(path, 0600), 0);
  tg_value *a;
  tg_error e;
  for (unsigned flags = 0; flags <= TG_LOAD_MMAP; flags += TG_LOAD_MMAP) {
    alarm(5); /* a hang fails the test instead of stalling the suite */
    cr_assert_eq(tg_load(path, flags, &a, &e), TG_EINVAL);
    alarm(0);
    snprintf(want, sizeof want, "'%s' is not a regular file", path);
    cr_assert_str_eq(e.msg, want);
    cr_assert_null(a);
  }
}

Test(serial, encode_options) {
  void *buf;
  size_t len;
  tg_error e;
  tg_encode_opts o = {.version = 2};
  cr_assert_eq(tg_encode(tg_null(), &o, &buf, &len, &e), TG_EINVAL);
  cr_assert_str_eq(e.msg, "encode options version 2 is not supported (expected 1)");
  cr_assert_null(buf);
  o = (tg_encode_opts){.version = TG_ENCODE_OPTS_V1, .compress = 100};
  cr_assert_eq(tg_encode(tg_null(), &o, &buf, &len, &e), TG_EINVAL);
  cr_assert_eq(strncmp(e.msg, "zstd level 100 is outside ", 26), 0, "%s", e.msg);
  cr_assert_eq(tg_encode(NULL, NULL, &buf, &len, &e), TG_EINVAL);
  cr_assert_str_eq(e.msg, "cannot encode a NULL value");
  cr_assert_eq(tg_dump(tg_null(), "/tmp/x", &o, &e), TG_EINVAL);
  cr_assert_eq(tg_dump(NULL, "/tmp/x", NULL, &e), TG_EINVAL);
  cr_assert_str_eq(e.msg, "a value and a path are required");
  cr_assert_eq(tg_decode("x", 1, NULL, &e), TG_EINVAL);
  cr_assert_eq(tg_encode(tg_null(), NULL, NULL, &len, &e), TG_EINVAL);
  /* compression shrinks compressible data, negative levels work */
  tg_value *v = big_array(100000, 0.0);
  uint8_t *plain = encode(v, 0, &len);
  size_t clen;
  uint8_t *c = encode(v, -5, &clen);
  cr_assert_lt(clen, len / 10);
  tg_value *back;
  cr_assert_eq(tg_decode(c, clen, &back, NULL), TG_OK);
  assert_same(back, v);
  tg_value_unref(back);
  free(c);
  free(plain);
  tg_value_unref(v);
}

/* ---- atomic dumps -------------------------------------------------------- */

Test(serial, dump_to_a_missing_directory, .init = make_tmpdir, .fini = rm_tmpdir) {
  char path[128], want[300];
  snprintf(path, sizeof path, "%s/nope/v.tgv", tmpdir);
  tg_error e;
  cr_assert_eq(tg_dump(tg_int(1), path, NULL, &e), TG_ENOENT);
  snprintf(want, sizeof want,
           "cannot create a temporary file next to '%s': No such file or directory", path);
  cr_assert_str_eq(e.msg, want);
  cr_assert_eq(count_entries(tmpdir), 0);
}

/* Run fn in a child process; returns its exit status. */
static int in_child(int (*fn)(void)) {
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) _exit(fn());
  int st;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  cr_assert(WIFEXITED(st));
  return WEXITSTATUS(st);
}

static char child_path[160];

static int dump_read_only_child(void) {
  /* root ignores permissions: become nobody first */
  if (geteuid() == 0 && setuid(65534) != 0) return 10;
  tg_error e;
  int rc = tg_dump(tg_int(1), child_path, NULL, &e);
  return rc == TG_EACCES ? 0 : 11;
}

Test(serial, dump_to_a_read_only_directory, .init = make_tmpdir, .fini = rm_tmpdir) {
  snprintf(child_path, sizeof child_path, "%s/v.tgv", tmpdir);
  cr_assert_eq(chmod(tmpdir, 0555), 0);
  cr_assert_eq(in_child(dump_read_only_child), 0);
  cr_assert_eq(count_entries(tmpdir), 0);
  chmod(tmpdir, 0700);
}

static int dump_too_big_child(void) {
  struct rlimit rl = {.rlim_cur = 8192, .rlim_max = 8192};
  signal(SIGXFSZ, SIG_IGN);
  if (setrlimit(RLIMIT_FSIZE, &rl) != 0) return 10;
  tg_value *v = big_array(100000, 1.0);
  tg_error e;
  int rc = tg_dump(v, child_path, NULL, &e);
  tg_value_unref(v);
  return rc == -EFBIG && strstr(e.msg, "cannot write") ? 0 : 11;
}

Test(serial, failed_write_leaves_nothing, .init = make_tmpdir, .fini = rm_tmpdir) {
  snprintf(child_path, sizeof child_path, "%s/v.tgv", tmpdir);
  cr_assert_eq(in_child(dump_too_big_child), 0);
  cr_assert_eq(count_entries(tmpdir), 0, "the temporary file is removed");
}

Test(serial, dump_onto_a_directory_fails_cleanly, .init = make_tmpdir, .fini = rm_tmpdir) {
  char path[128];
  snprintf(path, sizeof path, "%s/d", tmpdir);
  cr_assert_eq(mkdir(path, 0755), 0);
  tg_error e;
  int rc = tg_dump(tg_int(1), path, NULL, &e);
  cr_assert_eq(rc, -EISDIR, "%s", e.msg);
  cr_assert_neq(strstr(e.msg, "cannot rename onto"), NULL, "%s", e.msg);
  cr_assert_eq(count_entries(tmpdir), 1);
  cr_assert_eq(count_entries(path), 0);
}

Test(serial, dump_replaces_an_existing_file_whole, .init = make_tmpdir, .fini = rm_tmpdir) {
  char path[128];
  snprintf(path, sizeof path, "%s/v.tgv", tmpdir);
  tg_value *old = big_array(500000, 2.0), *neu = tg_str_c("small");
  cr_assert_eq(tg_dump(old, path, NULL, NULL), TG_OK);
  struct stat st1, st2;
  cr_assert_eq(stat(path, &st1), 0);
  tg_value *mapped;
  cr_assert_eq(tg_load(path, TG_LOAD_MMAP, &mapped, NULL), TG_OK);
  tg_encode_opts o = {.version = TG_ENCODE_OPTS_V1, .sync = 1};
  cr_assert_eq(tg_dump(neu, path, &o, NULL), TG_OK);
  cr_assert_eq(stat(path, &st2), 0);
  cr_assert_neq(st1.st_ino, st2.st_ino, "a new file, not the old one rewritten");
  size_t len;
  free(encode(neu, 0, &len));
  cr_assert_eq((size_t)st2.st_size, len);
  tg_value *a;
  cr_assert_eq(tg_load(path, 0, &a, NULL), TG_OK);
  assert_same(a, neu);
  tg_value_unref(a);
  assert_same(mapped, old); /* readers of the old file are undisturbed */
  tg_value_unref(mapped);
  cr_assert_eq(count_entries(tmpdir), 1);
  tg_value_unref(old);
  tg_value_unref(neu);
}

Test(serial, dump_honours_umask, .init = make_tmpdir, .fini = rm_tmpdir) {
  char path[128];
  snprintf(path, sizeof path, "%s/v.tgv", tmpdir);
  struct stat st;
  mode_t prev = umask(077);
  cr_assert_eq(tg_dump(tg_null(), path, NULL, NULL), TG_OK);
  cr_assert_eq(stat(path, &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0600);
  umask(022);
  cr_assert_eq(tg_dump(tg_null(), path, NULL, NULL), TG_OK);
  cr_assert_eq(stat(path, &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0644);
  umask(prev);
}
