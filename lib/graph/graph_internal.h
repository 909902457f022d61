/* lib/graph/graph_internal.h: the compact storage of a graph, read by the
 * scheduler.
 *
 * A graph is a handful of growable arrays, never one allocation per node:
 *   nodes[]  one 32-byte record per node: function, a slice of args[],
 *            options, the user key (an offset into the key arena);
 *   args[]   one 16-byte tagged record per argument of every node;
 *   keys     an arena of NUL-terminated strings: user node keys and the
 *            keys of TG_ARG_KEY arguments;
 *   kindex   open-addressing index of user node keys.
 * Generated keys ("FN#ID") are formatted on demand, never stored.
 *
 * Thread safety: as tg_graph (graph.h). While a compute runs, the graph is
 * read concurrently by workers and must not change.
 */
#ifndef TG_GRAPH_INTERNAL_H
#define TG_GRAPH_INTERNAL_H

#include <stdatomic.h>

#include "internal.h"
#include "registry/registry_internal.h"
#include "tgraph/graph.h"

/* What a node does when it runs. */
enum {
  TG__NK_CALL = 0,   /* fn(args...) */
  TG__NK_CHUNK = 1,  /* a list of fn(in_i, extras...) for the first `aux`
                        arguments in_i; the rest are the extras */
  TG__NK_CONCAT = 2, /* the concatenation of its arguments (lists) */
  TG__NK_MAPOVER = 3,/* fn mapped over the list result of its first
                        argument (a node), the rest being the extras:
                        expanded into CHUNK and CONCAT nodes once that
                        list is known (expand.c), never run */
};

/* aux of a CHUNK (and of a MAPOVER): the number of mapped inputs (for a
 * MAPOVER the chunk size, 0 = picked) in the low 24 bits, and where the
 * input goes among the extras in the high 8 (0: first). Chunks with the
 * input first thus keep aux == count. */
#define TG__CHUNK_MAX_COUNT 0xFFFFFFu
#define TG__CHUNK_MAX_POS 0xFFu
static inline uint32_t tg__chunk_count(uint32_t aux) { return aux & TG__CHUNK_MAX_COUNT; }
static inline uint32_t tg__chunk_pos(uint32_t aux) { return aux >> 24; }
static inline uint32_t tg__chunk_aux(size_t count, size_t pos) {
  return (uint32_t)count | (uint32_t)pos << 24;
}

typedef struct tg__gnode {
  const tg_func *fn; /* for CONCAT the mapped function (names the key) */
  uint32_t arg_off;  /* first argument in args[] */
  uint32_t nargs;
  uint32_t key;      /* 0: generated key; else 1 + arena offset */
  uint32_t aux;      /* CHUNK: number of mapped inputs */
  int16_t retries;   /* -1: the compute's default */
  int8_t cache;      /* -1, 0, 1 as tg_node_opts.cache */
  uint8_t kind;      /* TG__NK_* */
  float timeout;     /* seconds per attempt, 0 = none */
} tg__gnode;

/* External inputs. An argument of kind TG_ARG_FUTURE is, to the graph, an
 * opaque handle made by a layer above it (the executor's futures, in
 * sched/) that holds the argument's value once it exists. The graph only
 * owns the handle, through the ops its maker passes when adding it; how
 * the value is read is the maker's business. */
typedef struct tg__extern_ops {
  void *(*ref)(void *h); /* take a reference to h; returns h */
  void (*unref)(void *h);/* drop one */
} tg__extern_ops;

typedef struct tg__garg {
  uint8_t kind; /* tg_arg_kind */
  uint8_t pad[3];
  uint32_t node; /* NODE, ITEM, KEY: the node referenced */
  union {
    tg_value *value;   /* VALUE: an owned reference */
    int64_t index;     /* ITEM */
    uint64_t key;      /* KEY: arena offset of the key */
    tg_future *future; /* FUTURE: an external input, the handle of
                          tg_arg.future: one reference owned through
                          g->ext, never read by the graph */
  } u;
} tg__garg;

struct tg_graph {
  tg_registry *reg;         /* borrowed */
  const tg__extern_ops *ext;/* NULL, or the ops of the external inputs
                               among its arguments (one maker per graph) */
  _Atomic uint32_t refs;    /* 1 for its owner, + 1 per compute that
                               returned at its deadline while one of its
                               tasks still runs (sched/compute.c): the
                               last one frees it; it cannot change
                               while there are such computes */
  tg__gnode *nodes;
  size_t n, cap;
  tg__garg *args;
  size_t nargs, args_cap;
  char *keys;               /* the key arena */
  size_t keys_len, keys_cap;
  uint32_t *kindex;         /* slots: node id + 1, 0 = empty */
  size_t kindex_cap, nkeys; /* slots (power of two) / user keys */
  uint32_t *orig;           /* NULL, or for copies the original node ids,
                               which generated keys keep */
  int32_t *prio;            /* NULL while every node has priority 0 (kept
                               out of tg__gnode: most graphs have none);
                               else one per node slot (prio_cap) */
  size_t prio_cap;
  const tg_func *last_fn;   /* last function looked up by name */
  struct tg__chash *chash;  /* NULL, or digests of large constants
                               (chash.c): a cache of derived data,
                               filled while the graph is otherwise read */
  uint32_t nmapover;        /* MAPOVER nodes added: computes look for
                               them only when there are some */
  struct tg__gexpand *exp;  /* NULL, or the maps over node results
                               expanded for the compute under way (and
                               what undoes that): see expand.c */
  char errmsg[512];
};

static inline const tg__garg *tg__node_args(const tg_graph *g,
                                            const tg__gnode *n) {
  return g->args + n->arg_off;
}

/* Node n's priority (tg_node_opts.priority). */
static inline int tg__node_priority(const tg_graph *g, uint32_t n) {
  return g->prio ? g->prio[n] : 0;
}

/* True for argument kinds that reference another node. */
static inline bool tg__arg_is_node(unsigned kind) {
  return kind == TG_ARG_NODE || kind == TG_ARG_ITEM || kind == TG_ARG_KEY;
}

/* A generated key into buf (truncated to size, its full length returned,
 * as snprintf): "NAME#ID" for a call (kind TG__NK_CALL), "NAME.chunk#ID"
 * for a map's chunk and "NAME.map#ID" for the node assembling its result.
 * Formatted by hand: snprintf cost a fifth of the thread sending tasks to
 * workers (which now make the keys themselves, from the node id). */
int tg__key_generated(char *buf, size_t size, const char *name, size_t name_len,
                      unsigned kind, uint32_t id);
/* Node n's id in generated keys (a copy keeps its original's). */
static inline uint32_t tg__graph_key_id(const tg_graph *g, uint32_t n) {
  return g->orig ? g->orig[n] : n;
}

/* The key of node n: a pointer into the arena for a user key, else the
 * generated key formatted into buf (truncated to size). Never NULL. */
const char *tg__graph_key(const tg_graph *g, tg_node n, char *buf,
                          size_t size);
/* The same, with its length in *len (size > 0): for writers that need
 * both, without measuring it again. */
const char *tg__graph_key_len(const tg_graph *g, tg_node n, char *buf, size_t size,
                              size_t *len);

/* Set g's error message and return code. */
int tg__graph_fail(tg_graph *g, int code, const char *fmt, ...)
    TG__PRINTF(3, 4);

/* Add a node (all checks of tg_graph_add_fn). ext admits TG_ARG_FUTURE
 * arguments as external inputs owned through it (executor calls; NULL
 * refuses them; a graph takes them from one ext only); kind/aux as
 * tg__gnode. Constants are taken even on failure; external inputs are
 * referenced on success only. */
int tg__graph_add(tg_graph *g, const tg_func *fn, const tg_arg *args,
                  size_t nargs, const tg_node_opts *opts, unsigned kind,
                  uint32_t aux, const tg__extern_ops *ext, tg_node *out);

/* The pieces of an add, for callers adding several nodes atomically:
 * check arguments (*keybytes: arena bytes their KEY strings need) and
 * options (*keylen: length of opts->key, 0 when none), reserve room, then
 * append (which cannot fail). */
int tg__graph_check_args(tg_graph *g, const tg_func *fn, const tg_arg *args,
                         size_t nargs, const tg__extern_ops *ext, size_t *keybytes);
int tg__graph_check_opts(tg_graph *g, const tg_node_opts *o, size_t *keylen);
/* The priority an add with opts o gives its node (0 for V1 options). */
static inline int tg__opts_priority(const tg_node_opts *o) {
  return o && o->version >= TG_NODE_OPTS_V2 ? o->priority : 0;
}
/* Make g hold per-node priorities (all 0 so far): before the reserve of
 * an add whose priority is not 0. Changes nothing visible: on failure
 * (TG_ENOMEM, message set) and on success the graph means the same. */
int tg__graph_reserve_prio(tg_graph *g);
int tg__graph_reserve(tg_graph *g, size_t nodes, size_t nargs,
                      size_t keybytes, size_t nkeys);
tg_node tg__graph_append(tg_graph *g, const tg_func *fn, const tg_arg *args,
                         size_t nargs, const tg_node_opts *opts, size_t keylen,
                         unsigned kind, uint32_t aux);
/* Bulk building, for a caller that knows every key it gives is new
 * (used by no node, not of the generated form): tg__graph_add_fn of a
 * call without the lookup of opts->key, which is stored but not indexed
 * (the index's random reads are the cost of a big build). Before the
 * graph is read or changed otherwise, tg__graph_index_since(g, first)
 * indexes the keys of nodes first..n-1 in one pass: TG_OK or TG_ENOMEM
 * (then the graph must be freed). */
int tg__graph_add_new_key(tg_graph *g, const tg_func *fn, const tg_arg *args,
                          size_t nargs, const tg_node_opts *opts,
                          tg_node *out);
int tg__graph_index_since(tg_graph *g, size_t first);
/* Release the constants of args (they are taken even by failed adds). */
void tg__graph_drop_values(const tg_arg *args, size_t nargs);
/* Function by name, caching the last hit; NULL when unknown. */
const tg_func *tg__graph_lookup(tg_graph *g, const char *fn);

/* A new graph holding copies of the nodes order[0..n-1] of g, node i of
 * the copy being order[i]; remap[old] gives the new id of every node an
 * argument references. Constants and external inputs are referenced,
 * strings copied; generated keys keep the original ids. */
int tg__graph_extract(const tg_graph *g, const uint32_t *order, size_t n,
                      const uint32_t *remap, tg_graph **out);

/* Ensure room for `more` bytes in the key arena; TG_ENOMEM or TG_ELIMIT. */
int tg__graph_reserve_keys(tg_graph *g, size_t more);
/* Append a NUL-terminated copy of s (room reserved) and return its
 * offset. */
size_t tg__graph_put_key(tg_graph *g, const char *s, size_t len);
/* Index node n under its user key (room reserved by
 * tg__graph_reserve_index). */
void tg__graph_index_key(tg_graph *g, tg_node n);
int tg__graph_reserve_index(tg_graph *g, size_t more);
/* The node with user key s, or TG_NODE_NONE. */
tg_node tg__graph_find_user(const tg_graph *g, const char *s, size_t len);

/* Map fn over inputs[0..n-1] (as tg_graph_map, which it serves), each
 * input placed at argument `pos` among the extras (0: first; at most
 * nextra and TG__CHUNK_MAX_POS). */
int tg__graph_map_at(tg_graph *g, const tg_func *f, const tg_arg *inputs, size_t n,
                     const tg_arg *extra, size_t nextra, size_t pos, size_t chunksize,
                     const tg_node_opts *opts, tg_node *out);
/* A map of fn over the list result of node `over` (a TG__NK_MAPOVER
 * node, see above), the input placed at `pos`. Extras are taken or
 * referenced as by tg_graph_add. */
int tg__graph_map_over(tg_graph *g, const tg_func *f, tg_node over, const tg_arg *extra,
                       size_t nextra, size_t pos, size_t chunksize,
                       const tg_node_opts *opts, tg_node *out);

/* tg_graph_add of args holding TG_ARG_NODES (gather.c): a tg.build node
 * per such argument, then the call; all or nothing. */
int tg__graph_add_gathered(tg_graph *g, const tg_func *fn, const tg_arg *args, size_t nargs,
                           const tg_node_opts *opts, tg_node *out);

/* ---- maps over node results, expanded for one compute (expand.c) ----------
 *
 * A compute whose outputs need a MAPOVER node first computes the node it
 * maps over, then appends chunk nodes over the items (constants, so that
 * a chunk's key depends on its own items only) and turns the MAPOVER node
 * into the CONCAT of them, then runs the outputs. What was appended and
 * rewritten is undone when the compute ends, so the graph the caller sees
 * never changes; a compute that returned while one of its tasks still
 * runs (graph.h) leaves the undoing to the next change of the graph. */
/* Turn MAPOVER node m into chunks over the items of list (borrowed). */
int tg__graph_expand_map(tg_graph *g, tg_node m, const tg_value *list);
/* Undo every expansion (no effect without one). Only when no compute
 * runs on g. */
void tg__graph_expand_undo(tg_graph *g);
/* The compute that expanded g returned while a task of it still runs:
 * the next change of g (or tg_graph_free) undoes the expansion. */
void tg__graph_expand_close(tg_graph *g);
bool tg__graph_expand_stale(const tg_graph *g);
/* Drop the digests kept for arguments from index `from` on (undone). */
void tg__graph_chash_drop_from(tg_graph *g, size_t from);

/* ---- digests of large constants (chash.c) -------------------------------- */

/* tg_value_hash of constant argument `arg` (an index into g->args), kept
 * in g when the constant is large (read-mostly: filled while the graph
 * is otherwise only read; callers serialize, as node keys do). */
tg_digest tg__graph_const_digest(const tg_graph *g, uint32_t arg);
/* Free the constant digests of g (tg_graph_free). */
void tg__graph_chash_free(tg_graph *g);
/* Number of constant digests g keeps (for tests). */
size_t tg__graph_chash_count(const tg_graph *g);

#endif /* TG_GRAPH_INTERNAL_H */
