/* lib/offload/holders.h: the set of workers (conn indexes) holding a
 * kept result or a constant (ofl_handle.locs). Any number of workers may
 * join a run, so the set grows: conns 0-63 live in one inline word (most
 * handles, and all of a run of up to 64 workers, never allocate); words
 * for higher indexes are allocated when a first such holder is added.
 *
 * Thread safety: none; the engine's I/O thread owns every set. */
#ifndef TG_OFFLOAD_HOLDERS_H
#define TG_OFFLOAD_HOLDERS_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"

typedef struct ofl_holders {
  uint64_t lo;     /* conns 0..63 */
  uint64_t *hi;    /* conns 64.. (word k: 64(k+1)..), owned; NULL: none */
  uint32_t nhi;    /* words in hi */
} ofl_holders;

static inline bool tg__holders_has(const ofl_holders *s, int i) {
  if (i < 64) return (s->lo >> i) & 1;
  uint32_t w = (uint32_t)(i / 64 - 1);
  return w < s->nhi && ((s->hi[w] >> (i % 64)) & 1);
}

/* False when out of memory (the set is unchanged). */
static inline bool tg__holders_add(ofl_holders *s, int i) {
  if (i < 64) {
    s->lo |= UINT64_C(1) << i;
    return true;
  }
  uint32_t w = (uint32_t)(i / 64 - 1);
  if (w >= s->nhi) {
    uint64_t *p = tg__realloc(s->hi, (size_t)(w + 1) * sizeof *p);
    if (!p) return false;
    memset(p + s->nhi, 0, (size_t)(w + 1 - s->nhi) * sizeof *p);
    s->hi = p;
    s->nhi = w + 1;
  }
  s->hi[w] |= UINT64_C(1) << (i % 64);
  return true;
}

static inline void tg__holders_del(ofl_holders *s, int i) {
  if (i < 64) s->lo &= ~(UINT64_C(1) << i);
  else if ((uint32_t)(i / 64 - 1) < s->nhi) s->hi[i / 64 - 1] &= ~(UINT64_C(1) << (i % 64));
}

static inline bool tg__holders_any(const ofl_holders *s) {
  if (s->lo) return true;
  for (uint32_t w = 0; w < s->nhi; w++)
    if (s->hi[w]) return true;
  return false;
}

/* Whether conn i is the one and only holder. */
static inline bool tg__holders_only(const ofl_holders *s, int i) {
  if (!tg__holders_has(s, i)) return false;
  if (s->lo & ~(i < 64 ? UINT64_C(1) << i : 0)) return false;
  for (uint32_t w = 0; w < s->nhi; w++)
    if (s->hi[w] & ~(i >= 64 && w == (uint32_t)(i / 64 - 1) ? UINT64_C(1) << (i % 64) : 0))
      return false;
  return true;
}

static inline void tg__holders_free(ofl_holders *s) {
  tg__free(s->hi);
  memset(s, 0, sizeof *s);
}

/* Empty the set, holding conn i alone (false when out of memory: then
 * empty). */
static inline bool tg__holders_set_only(ofl_holders *s, int i) {
  s->lo = 0;
  for (uint32_t w = 0; w < s->nhi; w++) s->hi[w] = 0;
  return tg__holders_add(s, i);
}

#endif /* TG_OFFLOAD_HOLDERS_H */
