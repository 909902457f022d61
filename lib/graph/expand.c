/* lib/graph/expand.c: turning a map over a node's result (a MAPOVER node)
 * into chunk tasks over the items once the list is known, for one
 * compute, and undoing that when the compute ends.
 *
 * Why the graph grows between two stages of a compute rather than inside
 * a running plan: a run's plan (task_of, the dependents' CSR arrays) and
 * the graph's arrays are read without locks by every worker, and the
 * out-of-process dispatchers address tasks by node id; growing them
 * while tasks run would put a lock or a copy on that hot path of every
 * backend. Expanding between stages keeps the run untouched: the mapped
 * calls are ordinary CHUNK tasks of the second stage (scheduled, cached,
 * reported like any), at the cost of a barrier after the list's stage.
 *
 * The items become constants of the chunks, so a chunk's cache key
 * depends on its own items (and the extras) only: changing one item of
 * the list recomputes that item's chunk alone.
 */
#include <string.h>

#include "graph_internal.h"

typedef struct saved {
  tg_node node;
  tg__gnode rec; /* the MAPOVER record as added */
} saved;

struct tg__gexpand {
  size_t n, nargs, keys_len; /* the graph's sizes before the expansion */
  saved *s;
  size_t ns, cap;
  bool open;                 /* a compute is expanding or running it */
};

/* Remember the graph's sizes before its first expansion, and room for one
 * more rewritten node. */
static int begin(tg_graph *g) {
  struct tg__gexpand *x = g->exp;
  if (!x) {
    if (!(x = tg__calloc(1, sizeof *x))) return TG_ENOMEM;
    x->n = g->n, x->nargs = g->nargs, x->keys_len = g->keys_len;
    g->exp = x;
  }
  x->open = true;
  if (x->ns == x->cap) {
    size_t c = x->cap ? 2 * x->cap : 8;
    saved *p = tg__realloc(x->s, c * sizeof *p);
    if (!p) return TG_ENOMEM;
    x->s = p, x->cap = c;
  }
  return TG_OK;
}

int tg__graph_expand_map(tg_graph *g, tg_node m, const tg_value *list) {
  tg__gnode rec = g->nodes[m];
  size_t n = tg_list_len(list), nextra = rec.nargs - 1;
  if (begin(g)) return tg__graph_fail(g, TG_ENOMEM, "out of memory expanding a map");
  tg_arg *in = tg__malloc((n + nextra + 1) * sizeof *in);
  if (!in) return tg__graph_fail(g, TG_ENOMEM, "out of memory expanding a map of %zu", n);
  tg_arg *extra = in + n;
  tg_value *const *items = tg_list_items(list);
  for (size_t i = 0; i < n; i++) in[i] = tg_arg_value(tg_value_ref(items[i]));
  const tg__garg *a = tg__node_args(g, &rec);
  for (size_t j = 0; j < nextra; j++) { /* as they were added */
    const tg__garg *x = &a[1 + j];
    extra[j] = (tg_arg){(tg_arg_kind)x->kind, x->node, 0, NULL, NULL, NULL};
    if (x->kind == TG_ARG_VALUE) extra[j].value = tg_value_ref(x->u.value);
    if (x->kind == TG_ARG_ITEM) extra[j].index = x->u.index;
    if (x->kind == TG_ARG_KEY) extra[j].key = g->keys + x->u.key;
  }
  /* KEY strings point into the arena, which the map's reserve may move */
  char *keys = NULL;
  size_t kb = 0, at = 0;
  for (size_t j = 0; j < nextra; j++)
    if (extra[j].kind == TG_ARG_KEY) kb += strlen(extra[j].key) + 1;
  if (kb && !(keys = tg__malloc(kb))) {
    tg__graph_drop_values(in, n + nextra);
    tg__free(in);
    return tg__graph_fail(g, TG_ENOMEM, "out of memory expanding a map");
  }
  for (size_t j = 0; j < nextra; j++)
    if (extra[j].kind == TG_ARG_KEY) {
      size_t l = strlen(extra[j].key) + 1;
      memcpy(keys + at, extra[j].key, l);
      extra[j].key = keys + at;
      at += l;
    }
  /* The chunks take the map node's priority, as tg_graph_map's do. */
  tg_node_opts o = {TG_NODE_OPTS_V2, NULL, rec.retries, rec.cache, rec.timeout,
                    tg__node_priority(g, m)};
  tg_node concat;
  int rc = tg__graph_map_at(g, rec.fn, in, n, extra, nextra, tg__chunk_pos(rec.aux),
                            tg__chunk_count(rec.aux), &o, &concat);
  tg__free(in);
  tg__free(keys);
  if (rc) return rc;
  /* m becomes the concatenation just appended (the last node, keyless):
   * its own key and options stay, the surplus node goes. */
  struct tg__gexpand *x = g->exp;
  x->s[x->ns++] = (saved){m, rec};
  tg__gnode *d = &g->nodes[m];
  d->kind = TG__NK_CONCAT;
  d->arg_off = g->nodes[concat].arg_off;
  d->nargs = g->nodes[concat].nargs;
  d->aux = 0;
  g->n--;
  return TG_OK;
}

void tg__graph_expand_undo(tg_graph *g) {
  struct tg__gexpand *x = g->exp;
  if (!x) return;
  for (size_t i = x->ns; i-- > 0;) g->nodes[x->s[i].node] = x->s[i].rec;
  for (size_t i = x->nargs; i < g->nargs; i++)
    if (g->args[i].kind == TG_ARG_VALUE) tg_value_unref(g->args[i].u.value);
  tg__graph_chash_drop_from(g, x->nargs);
  g->n = x->n, g->nargs = x->nargs, g->keys_len = x->keys_len;
  g->exp = NULL;
  tg__free(x->s);
  tg__free(x);
}

void tg__graph_expand_close(tg_graph *g) {
  if (g->exp) g->exp->open = false;
}

bool tg__graph_expand_stale(const tg_graph *g) { return g->exp && !g->exp->open; }
