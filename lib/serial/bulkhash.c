/* lib/serial/bulkhash.c: XXH3-64 of large buffers (payload sections),
 * through libxxhash's run-time dispatched AVX2/AVX-512 code when the
 * library has it: about twice the speed of the portable inline code on
 * cached data, which the streaming dump and copy paths hash. Same digests
 * either way. */
#include "serial/format.h"
#include "serial/serial_config.h"

#include <xxhash.h>
#if TG_HAVE_XXH_DISPATCH
#include <xxh_x86dispatch.h> /* maps XXH3_64bits* to the dispatching entry points */
#endif

uint64_t tg__xxh3_bulk(const void *data, size_t len) {
  return XXH3_64bits(data, len);
}

tg__bulk_hasher *tg__bulk_hasher_new(void) {
  XXH3_state_t *st = XXH3_createState();
  if (st) XXH3_64bits_reset(st);
  return (tg__bulk_hasher *)st;
}

void tg__bulk_hasher_update(tg__bulk_hasher *h, const void *data, size_t len) {
  XXH3_64bits_update((XXH3_state_t *)h, data, len);
}

uint64_t tg__bulk_hasher_final(tg__bulk_hasher *h) {
  uint64_t d = XXH3_64bits_digest((XXH3_state_t *)h);
  XXH3_freeState((XXH3_state_t *)h);
  return d;
}
