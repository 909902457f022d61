/* lib/value/hash_internal.h: streaming canonical hashing, for callers that
 * hash several values (and other bytes) into one digest, such as the
 * cache's Merkle keys.
 *
 * A hasher buffers small writes and only starts XXH3's streaming state
 * when the input outgrows its buffer, so hashing a small value costs one
 * one-shot XXH3 call. Feeding the same bytes gives the same digest as
 * XXH3-128 (seed 0) over their concatenation.
 *
 * Thread safety: a hasher is used by one thread at a time.
 */
#ifndef TG_HASH_INTERNAL_H
#define TG_HASH_INTERNAL_H

#include "value_internal.h"

#define TG__HASHER_BUF 1024

typedef struct tg__hasher {
  void *state;                        /* XXH3_state_t *, NULL until needed */
  size_t n;                           /* bytes in buf */
  unsigned char buf[TG__HASHER_BUF];
} tg__hasher;

void tg__hasher_init(tg__hasher *h);
void tg__hasher_update(tg__hasher *h, const void *data, size_t len);
/* Feed v's canonical byte stream (see tg_value_hash in value.h). */
void tg__hasher_value(tg__hasher *h, const tg_value *v);
/* The digest; also releases the hasher's state (init again to reuse). */
tg_digest tg__hasher_final(tg__hasher *h);

#endif /* TG_HASH_INTERNAL_H */
