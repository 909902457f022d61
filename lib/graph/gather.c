/* lib/graph/gather.c: TG_ARG_NODES, one argument listing several nodes'
 * results, assembled by a tg.build node (the builtin the graph.json
 * reader uses for refs nested in an argument: one mechanism for both). */
#include <stdio.h>
#include <string.h>

#include "graph_internal.h"

tg_arg tg_arg_nodes(const tg_node *nodes, size_t n) {
  tg_value *ids = (nodes || !n) ? tg_list_alloc(n) : NULL;
  for (size_t i = 0; ids && i < n; i++)
    if (tg_list_init_item(ids, i, tg_int((int64_t)nodes[i])) != TG_OK) {
      tg_value_unref(ids);
      ids = NULL;
    }
  tg_arg a = {TG_ARG_NODES, TG_NODE_NONE, 0, NULL, ids, NULL};
  return a;
}

/* The template ["l", [["s", 0], ..., ["s", n - 1]]] of tg.build. */
static tg_value *list_template(size_t n) {
  tg_value *slots = tg_list_alloc(n);
  for (size_t i = 0; slots && i < n; i++)
    if (tg_list_init_item(slots, i, tg_list_of(2, tg_str_c("s"), tg_int((int64_t)i))))
      tg_value_unref(slots), slots = NULL;
  return slots ? tg_list_of(2, tg_str_c("l"), slots) : NULL;
}

/* A tg.build node (with a generated key) for the node list `ids`,
 * argument i of a call of fn; *out the argument that replaces it. */
static int add_build(tg_graph *g, const tg_func *fn, size_t i, const tg_value *ids,
                     tg_arg *out) {
  const tg_func *build = tg__graph_lookup(g, "tg.build");
  if (!build)
    return tg__graph_fail(g, TG_ENOFUNC, "call of '%s': a node list argument needs the "
                          "builtin tg.build (tg_registry_add_builtins)", fn->name);
  size_t n = tg_list_len(ids);
  tg_arg *in = tg__malloc((n + 1) * sizeof *in);
  tg_value *tmpl = in ? list_template(n) : NULL;
  if (!tmpl) {
    tg__free(in);
    return tg__graph_fail(g, TG_ENOMEM, "out of memory adding a node list");
  }
  in[0] = tg_arg_value(tmpl);
  for (size_t j = 0; j < n; j++) {
    int64_t id = tg_value_int(tg_list_get(ids, j));
    if (tg_value_type(tg_list_get(ids, j)) != TG_INT || id < 0 || (uint64_t)id >= g->n) {
      tg_value_unref(tmpl);
      tg__free(in);
      return tg__graph_fail(g, TG_EINVAL, "call of '%s': argument %zu lists node %lld, but "
                            "the graph has %zu nodes", fn->name, i, (long long)id, g->n);
    }
    in[1 + j] = tg_arg_node((tg_node)id);
  }
  tg_node b;
  int rc = tg__graph_add(g, build, in, n + 1, NULL, TG__NK_CALL, 0, NULL, &b);
  tg__free(in);
  if (rc == TG_OK) *out = tg_arg_node(b);
  return rc;
}

/* Remove the nodes from n on and the arguments from nargs on: a failed
 * add's tg.build nodes, which have generated keys (nothing indexed). */
static void truncate_to(tg_graph *g, size_t n, size_t nargs) {
  for (size_t i = nargs; i < g->nargs; i++)
    if (g->args[i].kind == TG_ARG_VALUE) tg_value_unref(g->args[i].u.value);
  tg__graph_chash_drop_from(g, nargs);
  g->n = n, g->nargs = nargs;
}

int tg__graph_add_gathered(tg_graph *g, const tg_func *fn, const tg_arg *args, size_t nargs,
                           const tg_node_opts *opts, tg_node *out) {
  tg_arg *a = tg__malloc(nargs * sizeof *a);
  if (!a) {
    tg__graph_drop_values(args, nargs);
    return tg__graph_fail(g, TG_ENOMEM, "out of memory in tg_graph_add");
  }
  memcpy(a, args, nargs * sizeof *a);
  size_t n0 = g->n, a0 = g->nargs;
  int rc = TG_OK;
  for (size_t i = 0; i < nargs && rc == TG_OK; i++) {
    if (a[i].kind != TG_ARG_NODES) continue;
    if (!a[i].value) {
      rc = tg__graph_fail(g, TG_EINVAL, "call of '%s': argument %zu is a node list that "
                          "could not be made (out of memory)", fn->name, i);
      break;
    }
    tg_value *ids = a[i].value;
    rc = add_build(g, fn, i, ids, &a[i]);
    if (rc == TG_OK) tg_value_unref(ids);
    else a[i].kind = TG_ARG_VALUE; /* still ours: dropped below */
  }
  if (rc == TG_OK) {
    rc = tg__graph_add(g, fn, a, nargs, opts, TG__NK_CALL, 0, NULL, out);
  } else {
    for (size_t i = 0; i < nargs; i++)
      if (a[i].kind == TG_ARG_VALUE || a[i].kind == TG_ARG_NODES) tg_value_unref(a[i].value);
  }
  if (rc != TG_OK) truncate_to(g, n0, a0); /* a failed add changes nothing */
  tg__free(a);
  return rc;
}
