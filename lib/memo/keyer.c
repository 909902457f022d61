/* lib/memo/keyer.c: Merkle keys of graph nodes (the byte stream is
 * tg__merkle_key's, key.h), computed iteratively for what a compute
 * needs.
 *
 * A node's key covers its function's identity (name, version, and the
 * digest of its code id or else of its plugin file) and per argument the
 * constant's value hash, the producing node's key (with the item index
 * or map key of a selector), for the path of a TG_FUNC_FILE_SOURCE
 * function the file's content digest, or for an argument the function
 * ignores (tg_func_def.ignore_args) a fixed marker: such an argument, and
 * whatever computes it, neither change the key nor make it unknown.
 * Nodes made by tg_graph_map() hash as their function with a leading
 * marker argument (a constant digest no value has): "tgchunk1" + u64
 * number of mapped inputs for a chunk (so a chunk of k inputs and e
 * extras differs from one of k - 1 and e + 1), "tgconcat1" for the node
 * concatenating the chunks, "tgmapover1" + u64 aux for a map over a
 * node's result not yet expanded (once expanded, it is the concatenation
 * of chunks over constant items).
 *
 * A constant's digest comes from the graph, which keeps those of large
 * constants (graph/chash.c).
 */
#include <string.h>

#include "graph/graph_internal.h"
#include "key.h"
#include "keyer.h"
#include "tgraph/cache.h"
#include "value/hash_internal.h"

/* ---- one node's key -------------------------------------------------------- */

tg_digest tg__func_identity(const tg_func *f) {
  tg__key_fn kf = {f->name, f->version, tg__func_key_digest(f)};
  return tg__merkle_key(&kf, NULL, 0);
}

static tg_digest marker(const char *tag, uint64_t n) {
  tg__hasher h;
  tg__hasher_init(&h);
  tg__hasher_update(&h, tag, strlen(tag));
  tg__hasher_update(&h, &n, 8);
  return tg__hasher_final(&h);
}

/* The file digest of a file source's path argument a. */
static void file_arg(const tg__keyer *k, const tg__garg *a, tg__key_arg *ka, int *why) {
  size_t len = 0;
  const char *s = a->kind == TG_ARG_VALUE ? tg_str_data(a->u.value, &len) : NULL;
  char path[4096];
  if (!s || tg_value_type(a->u.value) != TG_STR || len == 0 || len >= sizeof path ||
      memchr(s, '\0', len)) {
    if (!*why) *why = TG__WHY_FILE_PATH;
    return; /* keep the argument's ordinary digest */
  }
  memcpy(path, s, len);
  path[len] = '\0';
  tg_digest d;
  if (tg_cache_file_hash(k->cache, path, &d, NULL) != TG_OK) {
    if (!*why) *why = TG__WHY_FILE_READ;
    return;
  }
  ka->kind = TG__KEY_FILE;
  ka->digest = d;
}

static bool reserve_args(tg__keyer *k, size_t n) {
  if (n <= k->args_cap) return true;
  size_t c = k->args_cap ? k->args_cap : 16;
  while (c < n) c *= 2;
  tg__key_arg *p = tg__realloc(k->args, c * sizeof *p);
  if (!p) return false;
  k->args = p;
  k->args_cap = c;
  return true;
}

/* True when argument j of node nd stands for an argument its function
 * ignores: a call's argument j; a map chunk's mapped inputs (its first
 * aux arguments) are the function's argument 0, its extras arguments 1..;
 * a map's concatenating node has none of the function's arguments. */
static bool arg_ignored(const tg__gnode *nd, uint32_t j) {
  const tg_func *f = nd->fn;
  if (!f->ignore || nd->kind == TG__NK_CONCAT) return false;
  if (nd->kind == TG__NK_CALL) return tg__func_ignores(f, j);
  return tg__func_ignores(f, j < nd->aux ? 0 : (size_t)j - nd->aux + 1);
}

/* Compute the key of n, whose node arguments' keys are known. */
static int compute(tg__keyer *k, uint32_t n) {
  const tg_graph *g = k->g;
  const tg__gnode *nd = &g->nodes[n];
  const tg__garg *a = tg__node_args(g, nd);
  const tg_func *f = nd->fn;
  size_t lead = nd->kind == TG__NK_CALL ? 0 : 1;
  if (!reserve_args(k, nd->nargs + lead)) return TG_ENOMEM;
  tg__key_arg *ka = k->args;
  int why = 0;
  if (nd->kind == TG__NK_CHUNK) ka[0] = (tg__key_arg){TG__KEY_CONST, marker("tgchunk1", nd->aux), 0, NULL, 0};
  if (nd->kind == TG__NK_CONCAT) ka[0] = (tg__key_arg){TG__KEY_CONST, marker("tgconcat1", 0), 0, NULL, 0};
  if (nd->kind == TG__NK_MAPOVER) ka[0] = (tg__key_arg){TG__KEY_CONST, marker("tgmapover1", nd->aux), 0, NULL, 0};
  if (!(f->flags & TG_FUNC_PURE) && nd->cache != 1) why = TG__WHY_IMPURE;
  bool file = (f->flags & TG_FUNC_FILE_SOURCE) && nd->kind != TG__NK_CONCAT &&
              nd->kind != TG__NK_MAPOVER;
  for (uint32_t j = 0; j < nd->nargs; j++) {
    tg__key_arg *x = &ka[lead + j];
    *x = (tg__key_arg){TG__KEY_NODE, {0, 0}, 0, NULL, 0};
    if (arg_ignored(nd, j)) {
      x->kind = TG__KEY_IGNORED;
      continue;
    }
    switch (a[j].kind) {
      case TG_ARG_VALUE:
        x->kind = TG__KEY_CONST;
        x->digest = tg__graph_const_digest(g, nd->arg_off + j);
        break;
      case TG_ARG_FUTURE: /* an external input: known only once it ran */
        if (!why) why = TG__WHY_EXTERNAL;
        break;
      default:
        x->digest = k->key[a[j].node];
        if ((k->st[a[j].node] & ~TG__KEYER_KNOWN) && !why) why = TG__WHY_INPUT;
        if (a[j].kind == TG_ARG_ITEM) x->kind = TG__KEY_ITEM, x->index = a[j].u.index;
        if (a[j].kind == TG_ARG_KEY) {
          x->kind = TG__KEY_MAPKEY;
          x->key = g->keys + a[j].u.key;
          x->key_len = strlen(x->key);
        }
    }
    /* the path is argument 0 of a call, and every mapped input of a chunk */
    if (file && (nd->kind == TG__NK_CALL ? j == 0 : j < tg__chunk_count(nd->aux))) file_arg(k, &a[j], x, &why);
  }
  tg__key_fn kf = {f->name, f->version, tg__func_key_digest(f)};
  k->key[n] = tg__merkle_key(&kf, ka, nd->nargs + lead);
  k->st[n] = (uint8_t)(TG__KEYER_KNOWN | why);
  return TG_OK;
}

/* ---- the walk ------------------------------------------------------------------ */

void tg__keyer_init(tg__keyer *k, const tg_graph *g, tg_cache *cache) {
  memset(k, 0, sizeof *k);
  k->g = g;
  k->cache = cache;
}

void tg__keyer_free(tg__keyer *k) {
  tg__free(k->key);
  tg__free(k->st);
  tg__free(k->args);
  tg__free(k->stack);
  memset(k, 0, sizeof *k);
}

static bool push(tg__keyer *k, size_t *sp, uint32_t node) {
  if (*sp + 2 > k->stack_cap) {
    size_t c = k->stack_cap ? 2 * k->stack_cap : 128;
    uint32_t *p = tg__realloc(k->stack, c * sizeof *p);
    if (!p) return false;
    k->stack = p;
    k->stack_cap = c;
  }
  k->stack[(*sp)++] = node;
  k->stack[(*sp)++] = 0;
  return true;
}

int tg__keyer_get(tg__keyer *k, tg_node n, tg_digest *key, int *why) {
  const tg_graph *g = k->g;
  if (k->n < g->n) { /* first use, or the graph grew since */
    tg_digest *kd = tg__realloc(k->key, g->n * sizeof *kd);
    if (kd) k->key = kd;
    uint8_t *st = kd ? tg__realloc(k->st, g->n) : NULL;
    if (!st) return TG_ENOMEM;
    k->st = st;
    memset(st + k->n, 0, g->n - k->n);
    k->n = g->n;
  }
  size_t sp = 0;
  if (!(k->st[n] & TG__KEYER_KNOWN) && !push(k, &sp, n)) return TG_ENOMEM;
  while (sp) { /* frames: node, next argument */
    uint32_t x = k->stack[sp - 2], *next = &k->stack[sp - 1];
    const tg__gnode *nd = &g->nodes[x];
    const tg__garg *a = tg__node_args(g, nd);
    uint32_t child = UINT32_MAX;
    while (*next < nd->nargs && child == UINT32_MAX) {
      const tg__garg *y = &a[(*next)++];
      if (tg__arg_is_node(y->kind) && !(k->st[y->node] & TG__KEYER_KNOWN)) child = y->node;
    }
    if (child != UINT32_MAX) {
      if (!push(k, &sp, child)) return TG_ENOMEM;
      continue;
    }
    if (compute(k, x)) return TG_ENOMEM;
    sp -= 2;
  }
  *key = k->key[n];
  *why = k->st[n] & ~TG__KEYER_KNOWN;
  return TG_OK;
}
