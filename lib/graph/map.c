/* lib/graph/map.c: tg_graph_map: a function mapped over many inputs, as
 * chunk tasks (each calling the function once per input, in-process) and
 * one node concatenating their lists; tg_graph_map_node: the same over a
 * node's list result, one MAPOVER node until a compute knows the list
 * (lib/graph/expand.c). */
#include <string.h>
#include <unistd.h>

#include "graph_internal.h"

#define TG__CHUNK_MAX 4096 /* calls per chunk task when picked for the user */

static size_t pick_chunksize(size_t n) {
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  size_t tasks = 8 * (size_t)(cpus > 0 ? cpus : 1);
  size_t c = (n + tasks - 1) / tasks;
  if (c < 1) c = 1;
  return c > TG__CHUNK_MAX ? TG__CHUNK_MAX : c;
}

/* Fail the map: nothing was added; constants are released. */
static int map_fail(const tg_arg *inputs, size_t n, const tg_arg *extra,
                    size_t nextra, int rc) {
  if (inputs) tg__graph_drop_values(inputs, n);
  if (extra) tg__graph_drop_values(extra, nextra);
  return rc;
}

/* fn by name; TG_ENOFUNC (with a suggestion) when unknown. */
static const tg_func *lookup(tg_graph *g, const char *fn) {
  const tg_func *f = tg__graph_lookup(g, fn);
  if (!f) {
    const char *s = tg_registry_suggest(g->reg, fn);
    tg__graph_fail(g, TG_ENOFUNC, "no function named '%s'%s%s%s", fn,
                   s ? " (did you mean '" : "", s ? s : "", s ? "'?)" : "");
  }
  return f;
}

/* Does f take 1 + nextra arguments, the input at pos? */
static int check_shape(tg_graph *g, const tg_func *f, size_t nextra, size_t pos) {
  if (f->nargs >= 0 && (size_t)f->nargs != 1 + nextra)
    return tg__graph_fail(g, TG_EINVAL, "map of '%s': it takes %d arguments, a map passes %zu",
                          f->name, f->nargs, 1 + nextra);
  if (pos > nextra || pos > TG__CHUNK_MAX_POS)
    return tg__graph_fail(g, TG_EINVAL, "map of '%s': the item cannot be argument %zu of %zu%s",
                          f->name, pos, 1 + nextra,
                          pos > TG__CHUNK_MAX_POS ? " (at most 255 arguments before it)" : "");
  return TG_OK;
}

/* Append chunk [lo, hi) as a node; args is scratch for its arguments. */
static tg_node add_chunk(tg_graph *g, const tg_func *f, const tg_arg *inputs,
                         size_t lo, size_t hi, const tg_arg *extra,
                         size_t nextra, size_t pos, const tg_node_opts *opts,
                         tg_arg *args) {
  size_t k = hi - lo;
  memcpy(args, inputs + lo, k * sizeof *args);
  for (size_t j = 0; j < nextra; j++) {
    args[k + j] = extra[j];
    if (extra[j].kind == TG_ARG_VALUE) tg_value_ref(extra[j].value);
  }
  return tg__graph_append(g, f, args, k + nextra, opts, 0, TG__NK_CHUNK,
                          tg__chunk_aux(k, pos));
}

int tg_graph_map(tg_graph *g, const char *fn, const tg_arg *inputs, size_t n,
                 const tg_arg *extra, size_t nextra, size_t chunksize,
                 const tg_node_opts *opts, tg_node *out) {
  if (!g || !fn || !out || (n && !inputs) || (nextra && !extra)) {
    if (g) tg__graph_fail(g, TG_EINVAL, "tg_graph_map: missing argument");
    return map_fail(inputs, n, extra, nextra, TG_EINVAL);
  }
  const tg_func *f = lookup(g, fn);
  if (!f) return map_fail(inputs, n, extra, nextra, TG_ENOFUNC);
  return tg__graph_map_at(g, f, inputs, n, extra, nextra, 0, chunksize, opts, out);
}

int tg__graph_map_at(tg_graph *g, const tg_func *f, const tg_arg *inputs, size_t n,
                     const tg_arg *extra, size_t nextra, size_t pos, size_t chunksize,
                     const tg_node_opts *opts, tg_node *out) {
  int rc;
  const char *fn = f->name;
  if ((rc = check_shape(g, f, nextra, pos)))
    return map_fail(inputs, n, extra, nextra, rc);
  if (chunksize > TG__CHUNK_MAX_COUNT) chunksize = TG__CHUNK_MAX_COUNT;
  if (chunksize == 0) chunksize = pick_chunksize(n);
  size_t nchunks = (n + chunksize - 1) / chunksize;
  size_t kin, kex, keylen;
  if ((rc = tg__graph_check_args(g, f, inputs, n, NULL, &kin)) ||
      (rc = tg__graph_check_args(g, f, extra, nextra, NULL, &kex)) ||
      (rc = tg__graph_check_opts(g, opts, &keylen)))
    return map_fail(inputs, n, extra, nextra, rc);
  if (nchunks > UINT32_MAX || nextra > UINT32_MAX / (nchunks ? nchunks : 1))
    return map_fail(inputs, n, extra, nextra,
                    tg__graph_fail(g, TG_ELIMIT, "map of '%s' is too large", fn));
  size_t k = chunksize < n ? chunksize : n;
  tg_arg *args = tg__malloc((k + nextra + nchunks) * sizeof *args);
  if (!args || (rc = tg__graph_reserve(g, nchunks + 1, n + nchunks * (nextra + 1),
                                       kin + nchunks * kex + (keylen ? keylen + 1 : 0),
                                       keylen ? 1 : 0))) {
    tg__free(args);
    if (!args) tg__graph_fail(g, TG_ENOMEM, "out of memory in tg_graph_map");
    return map_fail(inputs, n, extra, nextra, args ? rc : TG_ENOMEM);
  }
  /* Every check passed and room is reserved: nothing below can fail. */
  tg_node_opts chunk_opts = {0};
  if (opts) {
    chunk_opts = *opts;
    chunk_opts.key = NULL;
  }
  tg_arg *links = args + k + nextra;
  for (size_t c = 0; c < nchunks; c++) {
    size_t lo = c * chunksize, hi = lo + chunksize < n ? lo + chunksize : n;
    links[c] = tg_arg_node(add_chunk(g, f, inputs, lo, hi, extra, nextra, pos,
                                     opts ? &chunk_opts : NULL, args));
  }
  if (extra) tg__graph_drop_values(extra, nextra); /* each chunk took a ref */
  *out = tg__graph_append(g, f, links, nchunks, opts, keylen, TG__NK_CONCAT, 0);
  tg__free(args);
  return TG_OK;
}

int tg__graph_map_over(tg_graph *g, const tg_func *f, tg_node over, const tg_arg *extra,
                       size_t nextra, size_t pos, size_t chunksize,
                       const tg_node_opts *opts, tg_node *out) {
  int rc;
  if ((rc = check_shape(g, f, nextra, pos))) {
    if (extra) tg__graph_drop_values(extra, nextra);
    return rc;
  }
  if (over == TG_NODE_NONE || over >= g->n) {
    if (extra) tg__graph_drop_values(extra, nextra);
    if (over == TG_NODE_NONE && g->errmsg[0]) return TG_EINVAL; /* keep its message */
    return tg__graph_fail(g, TG_EINVAL, "map of '%s' over node %u, but the graph has %zu nodes",
                          f->name, over, g->n);
  }
  if (chunksize > TG__CHUNK_MAX_COUNT) chunksize = TG__CHUNK_MAX_COUNT;
  size_t na = 1 + nextra;
  tg_arg stack[16];
  tg_arg *args = na <= 16 ? stack : tg__malloc(na * sizeof *args);
  if (!args) {
    if (extra) tg__graph_drop_values(extra, nextra);
    return tg__graph_fail(g, TG_ENOMEM, "out of memory in tg_graph_map_node");
  }
  args[0] = tg_arg_node(over);
  if (nextra) memcpy(args + 1, extra, nextra * sizeof *args);
  rc = tg__graph_add(g, f, args, na, opts, TG__NK_MAPOVER, tg__chunk_aux(chunksize, pos),
                     NULL, out);
  if (rc == TG_OK) g->nmapover++;
  if (args != stack) tg__free(args);
  return rc;
}

int tg_graph_map_node(tg_graph *g, const char *fn, tg_node over, const tg_arg *extra,
                      size_t nextra, size_t chunksize, const tg_node_opts *opts,
                      tg_node *out) {
  if (!g || !fn || !out || (nextra && !extra)) {
    if (g) tg__graph_fail(g, TG_EINVAL, "tg_graph_map_node: missing argument");
    if (extra) tg__graph_drop_values(extra, nextra);
    return TG_EINVAL;
  }
  const tg_func *f = lookup(g, fn);
  if (!f) {
    if (extra) tg__graph_drop_values(extra, nextra);
    return TG_ENOFUNC;
  }
  return tg__graph_map_over(g, f, over, extra, nextra, 0, chunksize, opts, out);
}
