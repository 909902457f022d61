/* lib/graph/copy.c: copying the part of a graph a submission needs, so
 * that the caller may change or free the graph while it runs. */
#include <string.h>

#include "graph_internal.h"

static size_t key_bytes(const tg_graph *g, const uint32_t *order, size_t n,
                        size_t *nargs, size_t *nkeys) {
  size_t bytes = 0;
  *nargs = *nkeys = 0;
  for (size_t i = 0; i < n; i++) {
    const tg__gnode *nd = &g->nodes[order[i]];
    const tg__garg *a = tg__node_args(g, nd);
    *nargs += nd->nargs;
    if (nd->key) {
      bytes += strlen(g->keys + nd->key - 1) + 1;
      (*nkeys)++;
    }
    for (uint32_t j = 0; j < nd->nargs; j++)
      if (a[j].kind == TG_ARG_KEY) bytes += strlen(g->keys + a[j].u.key) + 1;
  }
  return bytes;
}

static void copy_node(tg_graph *c, const tg_graph *g, uint32_t old,
                      const uint32_t *remap) {
  const tg__gnode *src = &g->nodes[old];
  tg__gnode *dst = &c->nodes[c->n];
  *dst = *src;
  dst->arg_off = (uint32_t)c->nargs;
  const tg__garg *a = tg__node_args(g, src);
  tg__garg *d = c->args + c->nargs;
  for (uint32_t j = 0; j < src->nargs; j++) {
    d[j] = a[j];
    if (tg__arg_is_node(a[j].kind)) d[j].node = remap[a[j].node];
    if (a[j].kind == TG_ARG_VALUE) tg_value_ref(a[j].u.value);
    if (a[j].kind == TG_ARG_FUTURE) g->ext->ref(a[j].u.future);
    if (a[j].kind == TG_ARG_KEY) {
      const char *k = g->keys + a[j].u.key;
      d[j].u.key = tg__graph_put_key(c, k, strlen(k));
    }
  }
  c->nargs += src->nargs;
  if (src->key) {
    const char *k = g->keys + src->key - 1;
    dst->key = (uint32_t)tg__graph_put_key(c, k, strlen(k)) + 1;
    tg__graph_index_key(c, (tg_node)c->n);
  }
  c->orig[c->n] = g->orig ? g->orig[old] : old;
  if (c->prio) c->prio[c->n] = g->prio[old];
  c->n++;
}

int tg__graph_extract(const tg_graph *g, const uint32_t *order, size_t n,
                      const uint32_t *remap, tg_graph **out) {
  tg_graph *c;
  size_t nargs, nkeys;
  size_t bytes = key_bytes(g, order, n, &nargs, &nkeys);
  int rc = tg_graph_new(g->reg, &c);
  if (rc) return rc;
  c->ext = g->ext;
  c->orig = tg__malloc((n ? n : 1) * sizeof *c->orig);
  if (!c->orig || (g->prio && tg__graph_reserve_prio(c)) ||
      tg__graph_reserve(c, n, nargs, bytes, nkeys)) {
    tg_graph_free(c);
    return TG_ENOMEM;
  }
  for (size_t i = 0; i < n; i++) copy_node(c, g, order[i], remap);
  *out = c;
  return TG_OK;
}
