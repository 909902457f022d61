/* lib/memo/keyer.h: the Merkle keys of a graph's nodes for one compute
 * (keyer.c), and whether a node's key can serve the cache.
 *
 * A key is known before anything runs: it covers the node's function and
 * its arguments' digests, recursively (the byte stream is key.h's).
 *
 * Thread safety: a tg__keyer is not thread-safe: callers serialize (the
 * memo holds its lock, memo.h). The graph must not change while a keyer
 * reads it.
 */
#ifndef TG_MEMO_KEYER_H
#define TG_MEMO_KEYER_H

#include "graph/graph_internal.h"
#include "tgraph/cache.h"

/* Why a node's key cannot serve the cache (TG__WHY_OK: it can). */
enum {
  TG__WHY_OK = 0,
  TG__WHY_IMPURE,    /* impure function, not opted in (cache = 1) */
  TG__WHY_INPUT,     /* an argument's node has one of these reasons */
  TG__WHY_FILE_PATH, /* file source whose path is not a constant string */
  TG__WHY_FILE_READ, /* file source whose file cannot be read */
  TG__WHY_EXTERNAL,  /* an external input (a future: executor calls) */
};

/* Node keys of one graph for one compute: computed on demand (a key needs
 * its upstream's keys), each once, iteratively. */
typedef struct tg__keyer {
  const tg_graph *g;
  tg_cache *cache;       /* file digests through it; NULL: read files */
  size_t n;              /* nodes covered by the arrays (0: none yet) */
  tg_digest *key;        /* per node, valid when st[i] & TG__KEYER_KNOWN */
  uint8_t *st;           /* per node: TG__KEYER_KNOWN | reason */
  struct tg__key_arg *args; /* scratch */
  size_t args_cap;
  uint32_t *stack;       /* DFS scratch: node, next argument pairs */
  size_t stack_cap;
} tg__keyer;
#define TG__KEYER_KNOWN 0x80

/* g and cache are borrowed and must outlive the keyer (cache may be
 * NULL: files are then read for their digests each time). */
void tg__keyer_init(tg__keyer *k, const tg_graph *g, tg_cache *cache);
void tg__keyer_free(tg__keyer *k);
/* The key of node n and why it cannot serve the cache (TG__WHY_*; the key
 * is still computed). TG_OK or TG_ENOMEM. */
int tg__keyer_get(tg__keyer *k, tg_node n, tg_digest *key /* OUT */,
                  int *why /* OUT */);
/* A function's identity: the key of a call of it without arguments. */
tg_digest tg__func_identity(const tg_func *f);

#endif /* TG_MEMO_KEYER_H */
