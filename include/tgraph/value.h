/* include/tgraph/value.h: tg_value, the immutable, reference-counted value
 * that every task consumes and produces.
 *
 * Types: null, bool, int (int64), float (double), str (UTF-8, counted,
 * may hold NUL), bytes, ndarray (C-contiguous, data aligned to 64 bytes,
 * possibly borrowed from a mapping the value keeps alive), list, map
 * (string keys, insertion order kept, hashed lookup).
 *
 * Life-cycle:
 *   1. build a value with a constructor; you own one reference
 *   2. share it: tg_value_ref() takes another reference
 *   3. read it with the accessors
 *   4. tg_value_unref() drops a reference; the last one frees it
 *
 * Ownership: constructors return a new reference (NULL only when memory
 *   runs out or an argument is invalid, as each says). Parameters named
 *   `item`/`val` documented as "taken" are consumed: the reference passes
 *   to the container, even when the call fails. Every other pointer
 *   parameter is borrowed. Pointers returned by accessors (list items,
 *   map values, string and array data) are borrowed from the value and
 *   stay valid while the caller holds a reference to it.
 *
 * Immutability: a value never changes once it is shared. The only
 *   mutation allowed is while building, by the sole owner: filling a new
 *   list with tg_list_init_item(), a new map with tg_map_put(), and
 *   writing a new array's data through tg_ndarray_data_mut(), all before
 *   the value is passed to any other call or referenced twice.
 *
 * Identity: a tg_value pointer is opaque. Small ints, null and booleans
 *   are encoded without allocation, so never compare pointers or
 *   dereference them; use tg_value_equal().
 *
 * Nesting: containers nest at most TG_DEPTH_MAX levels; building a deeper
 *   one fails, which keeps every recursive walk (free, hash, encode)
 *   within a bounded stack.
 *
 * Thread safety: reference counting is atomic and shared values are never
 *   written, so any number of threads may read, ref and unref the same
 *   value concurrently. Building (the mutations above) is single-threaded.
 * Fork: values survive fork(); a child may read and unref them.
 */
#ifndef TGRAPH_VALUE_H
#define TGRAPH_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tgraph/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tg_value tg_value; /* opaque */

typedef enum tg_type {
  TG_NULL = 0,
  TG_BOOL = 1,
  TG_INT = 2,
  TG_FLOAT = 3,
  TG_STR = 4,
  TG_BYTES = 5,
  TG_NDARRAY = 6,
  TG_LIST = 7,
  TG_MAP = 8,
} tg_type;

/* Element types of arrays. The numbers are part of the serialized format
 * and the canonical hash: never renumber. */
typedef enum tg_dtype {
  TG_DT_BOOL = 1, /* one byte, 0 or 1 */
  TG_DT_I8 = 2,
  TG_DT_I16 = 3,
  TG_DT_I32 = 4,
  TG_DT_I64 = 5,
  TG_DT_U8 = 6,
  TG_DT_U16 = 7,
  TG_DT_U32 = 8,
  TG_DT_U64 = 9,
  TG_DT_F32 = 10,
  TG_DT_F64 = 11,
} tg_dtype;

#define TG_NDIM_MAX 32     /* most dimensions an array may have */
#define TG_ARRAY_ALIGN 64  /* array data is aligned to this many bytes */
#define TG_DEPTH_MAX 512   /* most nesting levels of lists and maps */

/* Called once when the last value borrowing `data` is gone. */
typedef void (*tg_release_fn)(void *ctx, void *data);

/* ---- references -------------------------------------------------------- */

/* Take another reference to v and return v. v may be NULL. */
tg_value *tg_value_ref(tg_value *v);
/* Drop one reference; the last one frees v and releases its children and
 * borrowed memory. v may be NULL. */
void tg_value_unref(tg_value *v);

/* ---- scalars ------------------------------------------------------------ */

tg_value *tg_null(void);          /* never NULL, never allocates */
tg_value *tg_bool(bool b);        /* never NULL, never allocates */
tg_value *tg_int(int64_t i);      /* NULL only when out of memory */
tg_value *tg_float(double d);     /* NULL only when out of memory */

/* A copy of the `len` bytes at s, which must be valid UTF-8 (NUL bytes
 * allowed). NULL when s is not UTF-8 or memory runs out. */
tg_value *tg_str(const char *s, size_t len);
/* Same for a NUL-terminated string. */
tg_value *tg_str_c(const char *s);
/* A copy of `len` bytes; NULL only when out of memory. */
tg_value *tg_bytes(const void *data, size_t len);

/* ---- arrays ------------------------------------------------------------- */

/* A new zero-filled array. `shape` (ndim entries, each >= 0) is copied.
 * NULL when dtype or ndim (0..TG_NDIM_MAX) is invalid, the size overflows,
 * or memory runs out. Fill it with tg_ndarray_data_mut() before sharing. */
tg_value *tg_ndarray_new(tg_dtype dtype, int ndim, const int64_t *shape);
/* A new array holding a copy of `data` (tg_ndarray_nbytes bytes). */
tg_value *tg_ndarray_copy(tg_dtype dtype, int ndim, const int64_t *shape,
                          const void *data);
/* A zero-copy array over caller memory. `data` must be TG_ARRAY_ALIGN
 * aligned (or the array empty) and stay unchanged until release(ctx, data)
 * is called, once, when the last reference is gone. release may be NULL.
 * On failure (NULL) release is called before returning. */
tg_value *tg_ndarray_wrap(tg_dtype dtype, int ndim, const int64_t *shape,
                          void *data, tg_release_fn release, void *ctx);

/* ---- lists -------------------------------------------------------------- */

/* A list of n items, each taken. If any item is NULL, or memory runs out,
 * all items are released and NULL is returned, so calls can nest:
 *   tg_list_of(2, tg_int(1), tg_str_c("a")) */
tg_value *tg_list_of(size_t n, ...);
/* A list of the n items in items[], each taken (the array itself is
 * borrowed). Fails as tg_list_of(). */
tg_value *tg_list_take(size_t n, tg_value **items);
/* A list of n nulls to be filled with tg_list_init_item(). */
tg_value *tg_list_alloc(size_t n);
/* While building: set item i (taken) of a list from tg_list_alloc().
 * TG_EINVAL for a bad index or NULL item, TG_EDEPTH when too deeply
 * nested; the item is released on failure and the list is unchanged. */
int tg_list_init_item(tg_value *list, size_t i, tg_value *item);

/* ---- maps --------------------------------------------------------------- */

/* An empty map with room for `capacity` entries (0 is fine). */
tg_value *tg_map_new(size_t capacity);
/* While building: set key (UTF-8, copied) to val (taken). A key already
 * present keeps its position and gets the new value. TG_EINVAL for a NULL
 * val or a key that is not UTF-8, TG_EDEPTH, TG_ENOMEM; on failure val is
 * released and the map is unchanged. */
int tg_map_put(tg_value *map, const char *key, size_t keylen, tg_value *val);
int tg_map_put_c(tg_value *map, const char *key, tg_value *val);

/* ---- reading ------------------------------------------------------------ */

tg_type tg_value_type(const tg_value *v);
const char *tg_type_name(tg_type t);      /* "int", ...; never NULL */

/* The accessors below expect the named type (check with tg_value_type());
 * given another type they return false / 0 / 0.0 / NULL / empty. */
bool tg_value_bool(const tg_value *v);
int64_t tg_value_int(const tg_value *v);
double tg_value_float(const tg_value *v);
/* String or bytes data and length (str data is not NUL-terminated in
 * general). Borrowed. */
const char *tg_str_data(const tg_value *v, size_t *len /* OUT, may be NULL */);
const void *tg_bytes_data(const tg_value *v, size_t *len /* OUT, may be NULL */);

tg_dtype tg_ndarray_dtype(const tg_value *v);
int tg_ndarray_ndim(const tg_value *v);
const int64_t *tg_ndarray_shape(const tg_value *v);   /* ndim entries */
size_t tg_ndarray_size(const tg_value *v);            /* elements */
size_t tg_ndarray_nbytes(const tg_value *v);
const void *tg_ndarray_data(const tg_value *v);       /* 64-byte aligned */
/* Writable data; only while building (see Immutability). */
void *tg_ndarray_data_mut(tg_value *v);

size_t tg_dtype_size(tg_dtype dt);          /* bytes; 0 when invalid */
const char *tg_dtype_name(tg_dtype dt);     /* "f64", ...; NULL when invalid */
/* dtype from its name ("bool", "i8".."i64", "u8".."u64", "f32", "f64");
 * 0 when unknown. */
tg_dtype tg_dtype_from_name(const char *name);

size_t tg_list_len(const tg_value *v);
tg_value *tg_list_get(const tg_value *v, size_t i);   /* borrowed; NULL out of range */
tg_value *const *tg_list_items(const tg_value *v);    /* borrowed array of len */

size_t tg_map_len(const tg_value *v);
/* Value under key, borrowed; NULL when absent. Hashed: O(1) on average. */
tg_value *tg_map_get(const tg_value *v, const char *key, size_t keylen);
tg_value *tg_map_get_c(const tg_value *v, const char *key);
/* Entry i in insertion order. Borrowed; NULL out of range. */
const char *tg_map_key_at(const tg_value *v, size_t i, size_t *keylen /* OUT */);
tg_value *tg_map_value_at(const tg_value *v, size_t i);

/* ---- equality and hashing ------------------------------------------------ */

/* 128-bit digest. */
typedef struct tg_digest {
  uint64_t lo, hi;
} tg_digest;

/* Deep equality, consistent with tg_value_hash(): equal values have equal
 * hashes. int and float never compare equal (1 != 1.0). Floats compare by
 * bit pattern after mapping every NaN to one NaN, so NaN equals NaN and
 * -0.0 differs from 0.0 (a function may tell them apart: 1/x). Maps are
 * equal when they hold the same keys with equal values, in any order.
 * Arrays: same dtype, shape and bytes. */
bool tg_value_equal(const tg_value *a, const tg_value *b);

/* Canonical XXH3-128 hash (seed 0) of v: the same for the same logical
 * value in every process, on every machine and in every tgraph version
 * that reads this format. The byte stream hashed is, per value:
 *   null 0x00 | false 0x01 | true 0x02
 *   int    0x03, int64 LE
 *   float  0x04, IEEE-754 bits LE (any NaN as 0x7ff8000000000000)
 *   str    0x05, u64 LE byte length, bytes
 *   bytes  0x06, u64 LE length, bytes
 *   array  0x08, u8 dtype, u8 ndim, ndim x u64 LE dims, raw data bytes
 *   list   0x09, u64 LE count, each item
 *   map    0x0B, u64 LE count, entries sorted by key bytes (memcmp, a
 *          prefix first): u64 LE key length, key bytes, value
 * Array data is hashed in place, streaming, at about XXH3's own speed. */
tg_digest tg_value_hash(const tg_value *v);

/* 32 lowercase hex digits (hi then lo) and a NUL into out. */
void tg_digest_hex(tg_digest d, char out[33]);
bool tg_digest_equal(tg_digest a, tg_digest b);

/* ---- JSON ---------------------------------------------------------------- */

/* JSON mapping (both directions):
 *   null, true/false, int <-> integer, float <-> number with '.' or 'e'
 *   (a float is always written so that it reads back as a float),
 *   str <-> string (NUL written as \u0000), list <-> array, map <-> object.
 *   Values JSON cannot spell are objects with one "$"-key:
 *     NaN, Inf, -Inf   {"$float": "nan" | "inf" | "-inf"}
 *     bytes            {"$bytes": "<base64, RFC 4648, padded>"}
 *     ndarray          {"$ndarray": {"dtype": "f64", "shape": [2, 3],
 *                                     "data": [flat row-major numbers]}}
 *     a map whose only key starts with '$' (so it is not mistaken for the
 *     above)           {"$map": {the map}}
 *     a map with a NUL byte in a key (JSON readers reject those keys)
 *                      {"$map": [[key, value], ...]}
 *   "$ndarray" data is a base64 string of the raw little-endian bytes
 *   instead when numbers cannot carry it exactly (NaN or infinite floats,
 *   u64 above INT64_MAX); reading accepts either for any dtype.
 */
enum {
  TG_JSON_PRETTY = 1, /* indent by two spaces, one entry per line */
};

/* Write v as JSON text. On TG_OK *out is a NUL-terminated string the
 * caller frees with free(), of *len bytes (len may be NULL). */
int tg_value_to_json(const tg_value *v, unsigned flags, char **out /* OUT */,
                     size_t *len /* OUT, may be NULL */, tg_error *err);

/* Parse JSON text of len bytes into a new value. On error *out is NULL and
 * err says what is wrong and where ("line 3, column 7: ..."), with the
 * byte offset. Integers outside int64 are an error. */
int tg_value_from_json(const char *text, size_t len, tg_value **out /* OUT */,
                       tg_error *err);

#ifdef __cplusplus
}
#endif
#endif /* TGRAPH_VALUE_H */
