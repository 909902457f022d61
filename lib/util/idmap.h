/* lib/util/idmap.h: a hash map from non-zero 64-bit keys (object ids,
 * task ids, pointers) to pointers, with open addressing and deletion by
 * backward shift (no tombstones), for the tables both ends of the worker
 * protocol keep.
 *
 * A map of keys given in sequence (tg__idmap_seq: the ids of the
 * records sent on a connection, which mostly end in the order they were
 * sent) keeps each key in slot key & mask: a lookup is one look, a
 * deletion clears its slot. It grows while its live keys span more slots
 * than it has, and works as a hash map once that span would need more
 * than 8 times the slots its keys fill (one old key left among many
 * newer ones), until it is empty again.
 *
 * Thread safety: a map belongs to one thread (or to its owner's lock).
 */
#ifndef TG_UTIL_IDMAP_H
#define TG_UTIL_IDMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tg__idmap_slot {
  uint64_t key; /* 0: empty */
  void *val;
} tg__idmap_slot;

typedef struct tg__idmap {
  tg__idmap_slot *s;
  size_t mask;  /* slots - 1; slots is a power of two, or 0 when empty */
  size_t n;     /* keys stored */
  bool seq_asked; /* keys come in sequence (set while empty): */
  bool seq;     /* each is in its own slot now (above) */
} tg__idmap;

/* An empty map for keys given in sequence (above). */
static inline tg__idmap tg__idmap_seq(void) { return (tg__idmap){.seq_asked = true, .seq = true}; }

/* Free m's slots; m is empty again (a sequence map still). */
void tg__idmap_free(tg__idmap *m);
/* The value under key (non-zero), or NULL. */
void *tg__idmap_get(const tg__idmap *m, uint64_t key);
/* The value slot of key, to read or overwrite in place (valid until the
 * next put or del), or NULL when key is not there. */
void **tg__idmap_slot_of(tg__idmap *m, uint64_t key);
/* Store val under key (replacing any). False when out of memory (the map
 * is then unchanged). */
bool tg__idmap_put(tg__idmap *m, uint64_t key, void *val);
/* Remove key; returns its value or NULL. */
void *tg__idmap_del(tg__idmap *m, uint64_t key);

/* Iterate: for (size_t i = 0; i <= m->mask && m->s; i++) if (m->s[i].key) */

#endif /* TG_UTIL_IDMAP_H */
