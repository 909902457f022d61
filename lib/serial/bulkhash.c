/* lib/serial/bulkhash.c: XXH3-64 of large buffers (payload sections),
 * through libxxhash's run-time dispatched AVX2/AVX-512 code when the
 * library has it: about twice the speed of the portable inline code on
 * cached data, which the streaming dump and copy paths hash. Same digests
 * either way. */
#include "serial/format.h"
#include "serial/serial_config.h"

#include <xxhash.h>
#if TG_HAVE_XXH_DISPATCH && (defined(__x86_64__) || defined(__i386__))
#include <xxh_x86dispatch.h> /* maps XXH3_64bits* to the dispatching entry points */
#define USE_DISPATCH 1
#else
#define USE_DISPATCH 0
#endif

/* libxxhash's wide-vector code can return with the upper halves of the
 * vector registers dirty; the rest of the program (compiled for baseline
 * x86-64, legacy SSE encoding) then ran three times slower until the next
 * vzeroupper, measured on tg_value_hash. So clean up after every call.
 * Only on CPUs with AVX: elsewhere the instruction does not exist, and the
 * dispatcher never picked wide code. */
static inline void vector_state_clean(void) {
#if USE_DISPATCH
  if (__builtin_cpu_supports("avx")) __asm__ __volatile__("vzeroupper");
#endif
}

uint64_t tg__xxh3_bulk(const void *data, size_t len) {
  uint64_t d = XXH3_64bits(data, len);
  vector_state_clean();
  return d;
}

tg__bulk_hasher *tg__bulk_hasher_new(void) {
  XXH3_state_t *st = XXH3_createState();
  if (st) XXH3_64bits_reset(st);
  return (tg__bulk_hasher *)st;
}

void tg__bulk_hasher_update(tg__bulk_hasher *h, const void *data, size_t len) {
  XXH3_64bits_update((XXH3_state_t *)h, data, len);
  vector_state_clean();
}

uint64_t tg__bulk_hasher_final(tg__bulk_hasher *h) {
  uint64_t d = XXH3_64bits_digest((XXH3_state_t *)h);
  vector_state_clean();
  XXH3_freeState((XXH3_state_t *)h);
  return d;
}
