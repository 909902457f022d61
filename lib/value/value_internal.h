/* lib/value/value_internal.h: the memory layout of tg_value, shared by the
 * value, hash and serial modules (which need direct access for speed).
 *
 * A tg_value pointer is one of:
 *   - an immediate int: low bit 1, the int64 in the upper 63 bits
 *     (range TG__IMM_MIN..TG__IMM_MAX); no allocation, no refcount;
 *   - a pointer to a static immortal object (null, true, false; the
 *     out-of-process engine's "gone" null, offload/handle.c);
 *   - a pointer to a heap object starting with struct tg_value.
 * Heap objects are allocated with tg__malloc and freed by tg_value_unref.
 *
 * Thread safety: `refs` is atomic; every other field is written only while
 * the building owner holds the sole reference.
 */
#ifndef TG_VALUE_INTERNAL_H
#define TG_VALUE_INTERNAL_H

#include <stdatomic.h>

#include "internal.h"
#include "tgraph/value.h"

struct tg_value {
  _Atomic uint32_t refs; /* references; unused when TG__F_IMMORTAL */
  uint8_t type;          /* tg_type */
  uint8_t flags;         /* TG__F_* */
  uint16_t depth;        /* 0 for scalars, 1 + deepest child for containers */
};

enum {
  TG__F_IMMORTAL = 1, /* static object: ref/unref do nothing */
};

#define TG__IMM_MIN (-(INT64_C(1) << 62))
#define TG__IMM_MAX ((INT64_C(1) << 62) - 1)

static inline bool tg__is_imm(const tg_value *v) {
  return ((uintptr_t)v & 1u) != 0;
}
static inline int64_t tg__imm_get(const tg_value *v) {
  return (int64_t)(intptr_t)v >> 1; /* arithmetic shift keeps the sign */
}
static inline tg_value *tg__imm_make(int64_t i) {
  return (tg_value *)(uintptr_t)(((uint64_t)i << 1) | 1u);
}
static inline bool tg__imm_fits(int64_t i) {
  return i >= TG__IMM_MIN && i <= TG__IMM_MAX;
}

/* Nesting depth of any value (0 for immediates and scalars). */
static inline unsigned tg__depth(const tg_value *v) {
  return tg__is_imm(v) ? 0u : v->depth;
}

/* A reference-counted owner of memory that values borrow (an mmap, a
 * decode buffer, a user's wrapped array). release(ctx, data) runs when
 * the last borrower is gone. */
typedef struct tg__region {
  _Atomic uint32_t refs;
  tg_release_fn release;
  void *ctx;
  void *data;
} tg__region;

/* New region with one reference. On allocation failure returns NULL and
 * calls release(ctx, data) (so ownership is always settled). */
tg__region *tg__region_new(void *data, tg_release_fn release, void *ctx);
void tg__region_ref(tg__region *r);
void tg__region_unref(tg__region *r); /* r may be NULL */

typedef struct tg__int {
  tg_value h;
  int64_t i;
} tg__int; /* only for ints outside the immediate range */

typedef struct tg__float {
  tg_value h;
  double d;
} tg__float;

/* str and bytes. Owned data lives in buf[] (len bytes + a NUL, so str
 * data can be printed); borrowed data points into `region`. */
typedef struct tg__blob {
  tg_value h;
  size_t len;
  const char *data;   /* == buf, or into region's memory */
  tg__region *region; /* NULL when data is buf */
  char buf[];
} tg__blob;

typedef struct tg__array {
  tg_value h;
  uint8_t dtype;      /* tg_dtype */
  uint8_t ndim;
  size_t size;        /* elements: product of shape */
  size_t nbytes;      /* size * dtype size */
  void *data;         /* TG_ARRAY_ALIGN aligned (or empty) */
  tg__region *region; /* NULL: data from tg__aligned_alloc, freed with us */
  int64_t shape[];    /* ndim entries */
} tg__array;

typedef struct tg__list {
  tg_value h;
  size_t len;
  tg_value *items[]; /* len entries; NULL only while building */
} tg__list;

typedef struct tg__map_entry {
  size_t key_off;    /* offset of the key bytes in map->keys */
  uint32_t key_len;
  uint32_t key_hash; /* low 32 bits of XXH3-64 of the key */
  tg_value *val;
} tg__map_entry;

typedef struct tg__map {
  tg_value h;
  size_t len, cap;        /* entries used / allocated */
  tg__map_entry *entries; /* insertion order */
  char *keys;             /* arena of key bytes, each key NUL-terminated */
  size_t keys_len, keys_cap;
  uint32_t *index;        /* open addressing: entry index + 1, 0 = empty;
                             NULL while len is small (linear scan) */
  uint32_t index_mask;    /* index slots - 1 */
} tg__map;

/* Allocate a list of n items, all NULL, depth 1: for decoders that fill
 * items[] directly and then set h.depth. NULL when out of memory. */
tg__list *tg__list_new_raw(size_t n);

/* Allocate an owned str/bytes object of len bytes, uninitialized data
 * (buf[len] is set to 0): the caller writes buf before sharing. */
tg__blob *tg__blob_new_raw(tg_type type, size_t len);
/* A str/bytes object borrowing len bytes at data from region (a reference
 * to region is taken). */
tg_value *tg__blob_borrow(tg_type type, const char *data, size_t len,
                          tg__region *region);
/* An array borrowing data from region (a reference is taken). shape is
 * copied; dtype/ndim/shape must already be valid (size checked by the
 * caller). */
tg_value *tg__array_borrow(tg_dtype dtype, int ndim, const int64_t *shape,
                           void *data, tg__region *region);

/* Where this thread's large arrays get their data (the processes
 * backend's workers allocate them in shared memory so that results cross
 * with no copy). NULL, or a function returning TG_ARRAY_ALIGN-aligned
 * memory for nbytes (zero-filled when `zero`) owned by *region (one
 * reference, given to the array); it returns NULL to use the heap. */
typedef void *(*tg__array_alloc_fn)(size_t nbytes, bool zero,
                                    tg__region **region);
extern _Thread_local tg__array_alloc_fn tg__array_alloc_hook;

/* Compute the element count of a shape, failing (false) on overflow or a
 * negative dimension; also checks count * dtype size against SIZE_MAX. */
bool tg__shape_size(tg_dtype dtype, int ndim, const int64_t *shape,
                    size_t *size /* OUT */, size_t *nbytes /* OUT */);

/* XXH3-64 based key hash used by the map index (low 32 bits). */
uint32_t tg__map_key_hash(const char *key, size_t len);

#endif /* TG_VALUE_INTERNAL_H */
