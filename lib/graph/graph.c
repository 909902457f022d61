/* lib/graph/graph.c: creating and freeing graphs, and adding nodes (with
 * every check an add makes, so that a failed add changes nothing). */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "graph_internal.h"

int tg_graph_new(tg_registry *reg, tg_graph **out) {
  if (!out) return TG_EINVAL;
  *out = NULL;
  if (!reg) return TG_EINVAL;
  tg_graph *g = tg__calloc(1, sizeof *g);
  if (!g) return TG_ENOMEM;
  g->reg = reg;
  atomic_init(&g->refs, 1);
  *out = g;
  return TG_OK;
}

void tg_graph_free(tg_graph *g) {
  if (!g) return;
  if (atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1)
    return; /* a task of a timed-out compute still uses it: it frees it */
  tg__graph_expand_undo(g);
  for (size_t i = 0; i < g->nargs; i++) {
    if (g->args[i].kind == TG_ARG_VALUE) tg_value_unref(g->args[i].u.value);
    if (g->args[i].kind == TG_ARG_FUTURE) g->ext->unref(g->args[i].u.future);
  }
  tg__free(g->nodes);
  tg__free(g->args);
  tg__free(g->keys);
  tg__free(g->kindex);
  tg__free(g->orig);
  tg__free(g->prio);
  tg__graph_chash_free(g);
  tg__free(g);
}

int tg__graph_fail(tg_graph *g, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g->errmsg, sizeof g->errmsg, fmt, ap);
  va_end(ap);
  return code;
}

const char *tg_graph_errmsg(const tg_graph *g) { return g ? g->errmsg : ""; }
size_t tg_graph_size(const tg_graph *g) { return g ? g->n : 0; }

const tg_func *tg_node_func(const tg_graph *g, tg_node n) {
  return g && n < g->n ? g->nodes[n].fn : NULL;
}

void tg__graph_drop_values(const tg_arg *args, size_t nargs) {
  for (size_t i = 0; i < nargs; i++)
    if (args[i].kind == TG_ARG_VALUE || args[i].kind == TG_ARG_NODES)
      tg_value_unref(args[i].value);
}

/* Grow *arr (of *cap elements of `size` bytes) to hold `need`. */
static int reserve(void **arr, size_t *cap, size_t need, size_t size) {
  /* Never left NULL: g->args + offset must be valid arithmetic even in a
   * graph whose nodes all take no argument. */
  if (need <= *cap && *arr != NULL) return TG_OK;
  size_t c = *cap ? *cap : 64;
  while (c < need) c *= 2;
  if (c > SIZE_MAX / size) return TG_ENOMEM;
  void *p = tg__realloc(*arr, c * size);
  if (!p) return TG_ENOMEM;
  tg__advise_huge(p, c * size);
  *arr = p;
  *cap = c;
  return TG_OK;
}

/* "NAME#DIGITS" is the form of generated keys: users may not take it. */
static bool key_reserved(const char *k) {
  const char *h = strrchr(k, '#');
  if (!h || !h[1]) return false;
  for (const char *p = h + 1; *p; p++)
    if (*p < '0' || *p > '9') return false;
  return true;
}

/* tg__graph_check_opts; `known_new`: the caller vouches that o->key is
 * used by no node (see tg__graph_add_new_key), so it is not looked up. */
static int check_opts(tg_graph *g, const tg_node_opts *o, bool known_new,
                      size_t *keylen) {
  *keylen = 0;
  if (!o) return TG_OK;
  if (o->version != TG_NODE_OPTS_V1 && o->version != TG_NODE_OPTS_V2)
    return tg__graph_fail(g, TG_EINVAL, "tg_node_opts.version is %u, expected %d or %d",
                          o->version, TG_NODE_OPTS_V1, TG_NODE_OPTS_V2);
  if (o->retries < -1 || o->retries > INT16_MAX)
    return tg__graph_fail(g, TG_EINVAL, "tg_node_opts.retries %d is out of range",
                          o->retries);
  if (o->cache < -1 || o->cache > 1)
    return tg__graph_fail(g, TG_EINVAL, "tg_node_opts.cache must be -1, 0 or 1, not %d",
                          o->cache);
  if (!(o->timeout >= 0) || !isfinite(o->timeout))
    return tg__graph_fail(g, TG_EINVAL, "tg_node_opts.timeout must be >= 0");
  if (tg__opts_priority(o) != 0 && !g->prio && tg__graph_reserve_prio(g) != TG_OK)
    return TG_ENOMEM;
  if (!o->key) return TG_OK;
  size_t len = strlen(o->key);
  if (len == 0 || !tg__utf8_valid(o->key, len))
    return tg__graph_fail(g, TG_EINVAL, "a node key must be non-empty UTF-8");
  if (!known_new && tg_graph_find(g, o->key) != TG_NODE_NONE) /* user or generated */
    return tg__graph_fail(g, TG_EEXIST, "key '%s' is already used by another node",
                          o->key);
  if (key_reserved(o->key)) /* that namespace belongs to generated keys */
    return tg__graph_fail(g, TG_EEXIST,
                          "key '%s' has the form NAME#NUMBER, reserved for "
                          "generated keys", o->key);
  *keylen = len;
  return TG_OK;
}

int tg__graph_check_opts(tg_graph *g, const tg_node_opts *o, size_t *keylen) {
  return check_opts(g, o, false, keylen);
}

int tg__graph_check_args(tg_graph *g, const tg_func *fn, const tg_arg *args,
                      size_t nargs, const tg__extern_ops *ext, size_t *keybytes) {
  *keybytes = 0;
  if (tg__graph_expand_stale(g)) tg__graph_expand_undo(g); /* see expand.c */
  for (size_t i = 0; i < nargs; i++) {
    const tg_arg *a = &args[i];
    switch (a->kind) {
      case TG_ARG_VALUE:
        if (!a->value)
          return tg__graph_fail(g, TG_EINVAL, "call of '%s': argument %zu is a NULL value",
                                fn->name, i);
        break;
      case TG_ARG_KEY:
        if (!a->key || !tg__utf8_valid(a->key, strlen(a->key)))
          return tg__graph_fail(g, TG_EINVAL, "call of '%s': argument %zu has no UTF-8 key",
                                fn->name, i);
        *keybytes += strlen(a->key) + 1;
        /* fall through */
      case TG_ARG_NODE:
      case TG_ARG_ITEM:
        if (a->node == TG_NODE_NONE) {
          if (!g->errmsg[0]) /* else keep the message of the failed call */
            tg__graph_fail(g, TG_EINVAL, "call of '%s': argument %zu is TG_NODE_NONE",
                           fn->name, i);
          return TG_EINVAL;
        }
        if (a->node >= g->n)
          return tg__graph_fail(g, TG_EINVAL,
                                "call of '%s': argument %zu refers to node %u, but the "
                                "graph has %zu nodes", fn->name, i, a->node, g->n);
        break;
      case TG_ARG_FUTURE:
        if (!ext || !a->future)
          return tg__graph_fail(g, TG_EINVAL,
                                "call of '%s': argument %zu is a future; futures are "
                                "arguments of tg_executor_call only", fn->name, i);
        /* one maker (the executor) per graph: its graphs hold only its inputs */
        if (TG_NEVER(g->ext && g->ext != ext))
          return tg__graph_fail(g, TG_EINVAL, "call of '%s': argument %zu is an external "
                                "input of another kind than the graph's", fn->name, i);
        break;
      case TG_ARG_NODES:
        return tg__graph_fail(g, TG_EINVAL, "call of '%s': argument %zu is a node list; "
                              "node lists are arguments of tg_graph_add only", fn->name, i);
      default:
        return tg__graph_fail(g, TG_EINVAL, "call of '%s': argument %zu has unknown kind %d",
                              fn->name, i, (int)a->kind);
    }
  }
  return TG_OK;
}

/* Grow g->prio to the node capacity, new slots 0. */
static int grow_prio(tg_graph *g) {
  size_t want = g->cap ? g->cap : 64;
  if (g->prio && g->prio_cap >= want) return TG_OK;
  int32_t *p = tg__realloc(g->prio, want * sizeof *p);
  if (!p) return TG_ENOMEM;
  memset(p + g->prio_cap, 0, (want - g->prio_cap) * sizeof *p);
  g->prio = p;
  g->prio_cap = want;
  return TG_OK;
}

int tg__graph_reserve_prio(tg_graph *g) {
  if (grow_prio(g) != TG_OK)
    return tg__graph_fail(g, TG_ENOMEM, "out of memory for node priorities");
  return TG_OK;
}

int tg__graph_reserve(tg_graph *g, size_t nodes, size_t nargs, size_t keybytes,
                      size_t nkeys) {
  if (atomic_load_explicit(&g->refs, memory_order_acquire) > 1)
    return tg__graph_fail(g, TG_ESTATE, "the graph cannot change while a task of a compute "
                          "that timed out still runs (it did not stop when cancelled)");
  if (tg__graph_expand_stale(g)) tg__graph_expand_undo(g); /* see expand.c */
  if (nodes > UINT32_MAX - 1 - g->n || nargs > UINT32_MAX - g->nargs)
    return tg__graph_fail(g, TG_ELIMIT, "graph is full (%zu nodes, %zu arguments)",
                          g->n, g->nargs);
  if (reserve((void **)&g->nodes, &g->cap, g->n + nodes, sizeof *g->nodes) ||
      reserve((void **)&g->args, &g->args_cap, g->nargs + nargs, sizeof *g->args) ||
      tg__graph_reserve_keys(g, keybytes) || tg__graph_reserve_index(g, nkeys) ||
      (g->prio && grow_prio(g)))
    return tg__graph_fail(g, TG_ENOMEM, "out of memory adding node %zu", g->n);
  return TG_OK;
}

/* Append args (room reserved); constants are taken, external inputs
 * referenced (g->ext set by the add). */
static void store_args(tg_graph *g, const tg_arg *args, size_t nargs) {
  tg__garg *d = g->args + g->nargs;
  for (size_t i = 0; i < nargs; i++) {
    const tg_arg *a = &args[i];
    d[i].kind = (uint8_t)a->kind;
    memset(d[i].pad, 0, sizeof d[i].pad);
    d[i].node = a->node;
    switch (a->kind) {
      case TG_ARG_VALUE: d[i].u.value = a->value; break;
      case TG_ARG_ITEM: d[i].u.index = a->index; break;
      case TG_ARG_KEY: d[i].u.key = tg__graph_put_key(g, a->key, strlen(a->key)); break;
      case TG_ARG_FUTURE: d[i].u.future = g->ext->ref(a->future); break;
      default: d[i].u.value = NULL; break;
    }
  }
  g->nargs += nargs;
}

/* tg__graph_append; an unindexed key is stored only (see
 * tg__graph_add_new_key). */
static tg_node append(tg_graph *g, const tg_func *fn, const tg_arg *args,
                      size_t nargs, const tg_node_opts *opts, size_t keylen,
                      unsigned kind, uint32_t aux, bool index) {
  tg__gnode *n = &g->nodes[g->n];
  n->fn = fn;
  n->arg_off = (uint32_t)g->nargs;
  n->nargs = (uint32_t)nargs;
  n->aux = aux;
  n->kind = (uint8_t)kind;
  n->retries = opts ? (int16_t)opts->retries : -1;
  n->cache = opts ? (int8_t)opts->cache : -1;
  n->timeout = opts ? (float)opts->timeout : 0.0f;
  n->key = 0;
  if (g->prio) g->prio[g->n] = tg__opts_priority(opts);
  else assert(tg__opts_priority(opts) == 0); /* tg__graph_reserve_prio first */
  store_args(g, args, nargs);
  if (keylen) {
    n->key = (uint32_t)tg__graph_put_key(g, opts->key, keylen) + 1;
    if (index) tg__graph_index_key(g, (tg_node)g->n);
  }
  return (tg_node)g->n++;
}

tg_node tg__graph_append(tg_graph *g, const tg_func *fn, const tg_arg *args,
                         size_t nargs, const tg_node_opts *opts, size_t keylen,
                         unsigned kind, uint32_t aux) {
  return append(g, fn, args, nargs, opts, keylen, kind, aux, true);
}

int tg__graph_add(tg_graph *g, const tg_func *fn, const tg_arg *args,
                  size_t nargs, const tg_node_opts *opts, unsigned kind,
                  uint32_t aux, const tg__extern_ops *ext, tg_node *out) {
  size_t keylen, keybytes;
  int rc;
  if (fn->nargs >= 0 && kind == TG__NK_CALL && (size_t)fn->nargs != nargs) {
    rc = tg__graph_fail(g, TG_EINVAL, "function '%s' takes %d argument%s, got %zu",
                        fn->name, fn->nargs, fn->nargs == 1 ? "" : "s", nargs);
    goto fail;
  }
  if ((rc = tg__graph_check_args(g, fn, args, nargs, ext, &keybytes)) ||
      (rc = tg__graph_check_opts(g, opts, &keylen)) ||
      (rc = tg__graph_reserve(g, 1, nargs, keybytes + (keylen ? keylen + 1 : 0),
                              keylen ? 1 : 0)))
    goto fail;
  if (ext && !g->ext) g->ext = ext; /* its inputs checked: the same ext */
  tg_node id = tg__graph_append(g, fn, args, nargs, opts, keylen, kind, aux);
  if (out) *out = id;
  return TG_OK;
fail:
  tg__graph_drop_values(args, nargs);
  return rc;
}

int tg__graph_add_new_key(tg_graph *g, const tg_func *fn, const tg_arg *args,
                          size_t nargs, const tg_node_opts *opts,
                          tg_node *out) {
  size_t keylen, keybytes;
  int rc;
  if (fn->nargs >= 0 && (size_t)fn->nargs != nargs) {
    rc = tg__graph_fail(g, TG_EINVAL, "function '%s' takes %d argument%s, got %zu",
                        fn->name, fn->nargs, fn->nargs == 1 ? "" : "s", nargs);
    goto fail;
  }
  if ((rc = tg__graph_check_args(g, fn, args, nargs, NULL, &keybytes)) ||
      (rc = check_opts(g, opts, true, &keylen)) ||
      (rc = tg__graph_reserve(g, 1, nargs, keybytes + (keylen ? keylen + 1 : 0),
                              0)))
    goto fail;
  tg_node id = append(g, fn, args, nargs, opts, keylen, TG__NK_CALL, 0, false);
  if (out) *out = id;
  return TG_OK;
fail:
  tg__graph_drop_values(args, nargs);
  return rc;
}

int tg_graph_add_fn(tg_graph *g, const tg_func *fn, const tg_arg *args,
                    size_t nargs, const tg_node_opts *opts, tg_node *out) {
  if (!g || !fn || (nargs && !args)) {
    if (args) tg__graph_drop_values(args, nargs);
    if (g) tg__graph_fail(g, TG_EINVAL, "tg_graph_add: missing function or arguments");
    return TG_EINVAL;
  }
  for (size_t i = 0; i < nargs; i++)
    if (args[i].kind == TG_ARG_NODES) return tg__graph_add_gathered(g, fn, args, nargs, opts, out);
  return tg__graph_add(g, fn, args, nargs, opts, TG__NK_CALL, 0, NULL, out);
}

/* Find fn by name, remembering the last hit: graphs are usually built
 * from long runs of calls of one function. */
const tg_func *tg__graph_lookup(tg_graph *g, const char *fn) {
  const tg_func *f = g->last_fn;
  if (f && strcmp(f->name, fn) == 0) return f;
  f = tg_registry_find(g->reg, fn);
  if (f) g->last_fn = f;
  return f;
}

int tg_graph_add(tg_graph *g, const char *fn, const tg_arg *args, size_t nargs,
                 const tg_node_opts *opts, tg_node *out) {
  if (!g || !fn) {
    if (args) tg__graph_drop_values(args, nargs);
    if (g) tg__graph_fail(g, TG_EINVAL, "tg_graph_add: missing function name");
    return TG_EINVAL;
  }
  const tg_func *f = tg__graph_lookup(g, fn);
  if (!f) {
    if (args) tg__graph_drop_values(args, nargs);
    const char *s = tg_registry_suggest(g->reg, fn);
    if (s)
      return tg__graph_fail(g, TG_ENOFUNC, "no function named '%s' (did you mean '%s'?)",
                            fn, s);
    return tg__graph_fail(g, TG_ENOFUNC, "no function named '%s' (the registry is empty)",
                          fn);
  }
  return tg_graph_add_fn(g, f, args, nargs, opts, out);
}

tg_node tg_call(tg_graph *g, const char *fn, size_t nargs, ...) {
  tg_arg stack[16];
  tg_arg *args = nargs <= 16 ? stack : tg__malloc(nargs * sizeof *args);
  va_list ap;
  va_start(ap, nargs);
  for (size_t i = 0; i < nargs; i++) {
    tg_arg a = va_arg(ap, tg_arg);
    if (args) {
      args[i] = a;
    } else if (a.kind == TG_ARG_VALUE) {
      tg_value_unref(a.value); /* out of memory: still take constants */
    }
  }
  va_end(ap);
  if (!args) {
    if (g) tg__graph_fail(g, TG_ENOMEM, "out of memory in tg_call");
    return TG_NODE_NONE;
  }
  tg_node n = TG_NODE_NONE;
  if (tg_graph_add(g, fn, args, nargs, NULL, &n) != TG_OK) n = TG_NODE_NONE;
  if (args != stack) tg__free(args);
  return n;
}
