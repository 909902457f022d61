/* lib/memo/key.h: Merkle keys of graph nodes, for memoization.
 *
 * A node's key is a pure function of its function's identity and of its
 * arguments' digests, so it is known before anything runs and a cached
 * output makes its whole upstream unnecessary. It does not depend on
 * graph internals: callers pass digests and strings.
 *
 * The key is XXH3-128 (seed 0; lo = low64, hi = high64) over this byte
 * stream, all integers little-endian:
 *
 *   "tgkey1"                    6 bytes, the stream's version
 *   u64 name length, name bytes           the function's registered name
 *   u64 version length, version bytes     its version string ("" if none)
 *   16 bytes code digest (lo, hi)         for a function declaring a code
 *                                         id, XXH3-128 of "tgcode1" + the
 *                                         id; else the content digest of
 *                                         the plugin that provides it; else
 *                                         16 zero bytes
 *   u64 argument count
 *   per argument, one kind byte and its data:
 *     0x01 constant    16 bytes: tg_value_hash of the value (lo, hi)
 *     0x02 node        16 bytes: the producing node's key
 *     0x03 list item   16 bytes node key, i64 index (as given: -1 and
 *                      len-1 give different keys)
 *     0x04 map item    16 bytes node key, u64 key length, key bytes
 *     0x05 file        16 bytes: XXH3-128 of a file's content (the path
 *                      argument of a TG_FUNC_FILE_SOURCE function)
 *     0x06 ignored     16 zero bytes: an argument the function declares
 *                      not to affect its result (tg_func_def.ignore_args);
 *                      its value, and its node's key, are left out
 *
 * Thread safety: pure function, thread-safe.
 */
#ifndef TG_MEMO_KEY_H
#define TG_MEMO_KEY_H

#include <stddef.h>
#include <stdint.h>

#include "tgraph/value.h"

typedef enum tg__key_arg_kind {
  TG__KEY_CONST = 1,  /* digest = tg_value_hash(constant) */
  TG__KEY_NODE = 2,   /* digest = the producing node's key */
  TG__KEY_ITEM = 3,   /* digest = node key; index */
  TG__KEY_MAPKEY = 4, /* digest = node key; key, key_len */
  TG__KEY_FILE = 5,   /* digest = tg_cache_file_hash of the path */
  TG__KEY_IGNORED = 6, /* digest = zero: an ignored argument */
} tg__key_arg_kind;

typedef struct tg__key_arg {
  tg__key_arg_kind kind;
  tg_digest digest;
  int64_t index;    /* TG__KEY_ITEM */
  const char *key;  /* TG__KEY_MAPKEY: key_len bytes, borrowed */
  size_t key_len;
} tg__key_arg;

typedef struct tg__key_fn {
  const char *name;          /* required */
  const char *version;       /* NULL = "" */
  const tg_digest *plugin;   /* the code digest (tg__func_key_digest): code
                                id, else plugin file; NULL = 16 zero bytes */
} tg__key_fn;

/* The node key for fn applied to args[0..nargs). All pointers borrowed. */
tg_digest tg__merkle_key(const tg__key_fn *fn, const tg__key_arg *args,
                         size_t nargs);

#endif /* TG_MEMO_KEY_H */
