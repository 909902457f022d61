/* tests/fuzz/fuzz_decode.c: libFuzzer target for the binary decoder.
 *
 * Any input must either fail cleanly (a negative code, no value) or give
 * a value that survives a round trip: re-encoding it succeeds, decoding
 * that gives an equal value with the same canonical hash, re-encoding is
 * deterministic, and the zero-copy decoder agrees with the copying one.
 * A broken property aborts, which libFuzzer reports as a crash.
 *
 * Random mutations almost never keep the header's checksums and lengths
 * right, which would confine the fuzzer to the header check. So each
 * input is also decoded once more with its lengths and checksums
 * recomputed (layout in tgraph/serial.h), which lets mutations reach the
 * meta section parser. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <zstd.h>

#include "tgraph/serial.h"
#include "tgraph/value.h"

#define REQUIRE(cond, what)                                        \
  do {                                                             \
    if (!(cond)) {                                                 \
      fprintf(stderr, "fuzz_decode: %s (%s:%d)\n", what, __FILE__, \
              __LINE__);                                           \
      abort();                                                     \
    }                                                              \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void release_buf(void *ctx, void *buf) {
  (void)ctx;
  free(buf);
}

/* Decode a 64-byte aligned copy without copying arrays out of it. */
static void check_borrow(const uint8_t *data, size_t size, const tg_value *v) {
  void *copy = NULL;
  REQUIRE(posix_memalign(&copy, 64, size ? size : 1) == 0, "out of memory");
  if (size) memcpy(copy, data, size);
  tg_value *b = NULL;
  int rc = tg_decode_borrow(copy, size, release_buf, NULL, &b, NULL);
  REQUIRE(rc == TG_OK && b, "borrowing decode fails where copying succeeds");
  REQUIRE(tg_value_equal(v, b), "borrowing decode gives another value");
  tg_value_unref(b);
}

/* Encode v (which must work for any decoded value) into *out. */
static size_t encode(const tg_value *v, void **out) {
  size_t len = 0;
  tg_error err;
  int rc = tg_encode(v, NULL, out, &len, &err);
  if (rc != TG_OK) fprintf(stderr, "tg_encode: %s\n", err.msg);
  REQUIRE(rc == TG_OK && *out, "a decoded value does not encode");
  return len;
}

static void check(const uint8_t *data, size_t size) {
  tg_value *v = (tg_value *)data; /* must be overwritten */
  tg_error err;
  int rc = tg_decode(data, size, &v, &err);
  if (rc != TG_OK) {
    REQUIRE(rc < 0 && v == NULL, "failed decode left a value");
    REQUIRE(err.code == rc && err.msg[0], "failed decode without a message");
    return;
  }
  REQUIRE(v != NULL, "decode succeeded without a value");
  tg_digest d = tg_value_hash(v);

  void *enc = NULL;
  size_t len = encode(v, &enc);
  tg_value *w = NULL;
  rc = tg_decode(enc, len, &w, &err);
  if (rc != TG_OK) fprintf(stderr, "tg_decode: %s\n", err.msg);
  REQUIRE(rc == TG_OK, "re-encoded value does not decode");
  REQUIRE(tg_value_equal(v, w), "round trip changed the value");
  REQUIRE(tg_digest_equal(d, tg_value_hash(w)), "round trip changed the hash");

  void *enc2 = NULL;
  size_t len2 = encode(w, &enc2);
  REQUIRE(len2 == len && memcmp(enc, enc2, len) == 0,
          "encoding is not deterministic");

  check_borrow(data, size, v);
  free(enc);
  free(enc2);
  tg_value_unref(w);
  tg_value_unref(v);
}

static uint64_t get64(const uint8_t *p) {
  uint64_t x;
  memcpy(&x, p, 8);
  return x;
}

static void put64(uint8_t *p, uint64_t x) { memcpy(p, &x, 8); }

/* Recompute the payload length and the section checksums of the body
 * (uncompressed: len bytes at body) into header h. */
static void fix_sections(uint8_t *h, const uint8_t *body, size_t len) {
  uint64_t meta_len = get64(h + 8);
  if (meta_len == 0 || meta_len > len) return;
  size_t span = ((size_t)meta_len + 63) & ~(size_t)63;
  if (span > len) span = len;
  put64(h + 16, len - span);
  put64(h + 32, XXH3_64bits(body, (size_t)meta_len));
  put64(h + 40, XXH3_64bits(body + span, len - span));
}

/* A copy of an encoding with stored length, payload length and checksums
 * made consistent; NULL when it does not even start like one. */
static uint8_t *fix_up(const uint8_t *data, size_t size) {
  if (size < 64 || memcmp(data, "\x89TGV", 4) != 0) return NULL;
  uint8_t *c = malloc(size);
  REQUIRE(c != NULL, "out of memory");
  memcpy(c, data, size);
  put64(c + 24, size - 64);
  if (!(c[6] & 1)) {
    fix_sections(c, c + 64, size - 64);
  } else { /* zstd: checksums cover the decompressed body */
    unsigned long long n = ZSTD_getFrameContentSize(c + 64, size - 64);
    uint8_t *body = n <= (1u << 20) ? malloc(n ? n : 1) : NULL;
    size_t got = body ? ZSTD_decompress(body, n, c + 64, size - 64) : 0;
    if (body && !ZSTD_isError(got)) fix_sections(c, body, got);
    free(body);
  }
  put64(c + 48, XXH3_64bits(c, 48));
  return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  check(data, size);
  uint8_t *fixed = fix_up(data, size);
  if (fixed && memcmp(fixed, data, size) != 0) check(fixed, size);
  free(fixed);
  return 0;
}
