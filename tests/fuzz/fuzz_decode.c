/* tests/fuzz/fuzz_decode.c: libFuzzer target for the binary decoder.
 *
 * Any input must either fail cleanly (a negative code, no value) or give
 * a value that survives a round trip: re-encoding it succeeds, decoding
 * that gives an equal value with the same canonical hash, re-encoding is
 * deterministic, and the zero-copy decoder agrees with the copying one.
 * A broken property aborts, which libFuzzer reports as a crash. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  tg_value *v = (tg_value *)data; /* must be overwritten */
  tg_error err;
  int rc = tg_decode(data, size, &v, &err);
  if (rc != TG_OK) {
    REQUIRE(rc < 0 && v == NULL, "failed decode left a value");
    REQUIRE(err.code == rc && err.msg[0], "failed decode without a message");
    return 0;
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
  return 0;
}
