/* tests/fuzz/fuzz_json.c: libFuzzer target for the JSON reader.
 *
 * Any input must either fail cleanly (a negative code, no value, a
 * message) or give a value that writes back to JSON, compact and pretty,
 * reading back as an equal value with the same canonical hash; the value
 * must also survive the binary encoder. A broken property aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tgraph/serial.h"
#include "tgraph/value.h"

#define REQUIRE(cond, what)                                      \
  do {                                                           \
    if (!(cond)) {                                               \
      fprintf(stderr, "fuzz_json: %s (%s:%d)\n", what, __FILE__, \
              __LINE__);                                         \
      abort();                                                   \
    }                                                            \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_json_round_trip(const tg_value *v, tg_digest d,
                                  unsigned flags) {
  char *text = NULL;
  size_t len = 0;
  tg_error err;
  int rc = tg_value_to_json(v, flags, &text, &len, &err);
  REQUIRE(rc == TG_OK && text, "a parsed value does not write as JSON");
  REQUIRE(strlen(text) == len, "written JSON length is wrong");
  tg_value *w = NULL;
  rc = tg_value_from_json(text, len, &w, &err);
  if (rc != TG_OK) fprintf(stderr, "re-read: %s\n%s\n", err.msg, text);
  REQUIRE(rc == TG_OK, "written JSON does not read back");
  REQUIRE(tg_value_equal(v, w), "JSON round trip changed the value");
  REQUIRE(tg_digest_equal(d, tg_value_hash(w)), "JSON round trip changed the hash");
  tg_value_unref(w);
  free(text);
}

static void check_binary_round_trip(const tg_value *v, tg_digest d) {
  void *buf = NULL;
  size_t len = 0;
  int rc = tg_encode(v, NULL, &buf, &len, NULL);
  REQUIRE(rc == TG_OK && buf, "a parsed value does not encode");
  tg_value *w = NULL;
  rc = tg_decode(buf, len, &w, NULL);
  REQUIRE(rc == TG_OK, "encoded value does not decode");
  REQUIRE(tg_value_equal(v, w), "binary round trip changed the value");
  REQUIRE(tg_digest_equal(d, tg_value_hash(w)), "binary round trip changed the hash");
  tg_value_unref(w);
  free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  tg_value *v = (tg_value *)data; /* must be overwritten */
  tg_error err;
  int rc = tg_value_from_json((const char *)data, size, &v, &err);
  if (rc != TG_OK) {
    REQUIRE(rc < 0 && v == NULL, "failed parse left a value");
    REQUIRE(err.code == rc && err.msg[0], "failed parse without a message");
    return 0;
  }
  REQUIRE(v != NULL, "parse succeeded without a value");
  tg_digest d = tg_value_hash(v);
  check_json_round_trip(v, d, 0);
  check_json_round_trip(v, d, TG_JSON_PRETTY);
  check_binary_round_trip(v, d);
  tg_value_unref(v);
  return 0;
}
