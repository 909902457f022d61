/* lib/graph/map.c: tg_graph_map: a function mapped over many inputs, as
 * chunk tasks (each calling the function once per input, in-process) and
 * one node concatenating their lists. */
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

/* Append chunk [lo, hi) as a node; args is scratch for its arguments. */
static tg_node add_chunk(tg_graph *g, const tg_func *f, const tg_arg *inputs,
                         size_t lo, size_t hi, const tg_arg *extra,
                         size_t nextra, const tg_node_opts *opts, tg_arg *args) {
  size_t k = hi - lo;
  memcpy(args, inputs + lo, k * sizeof *args);
  for (size_t j = 0; j < nextra; j++) {
    args[k + j] = extra[j];
    if (extra[j].kind == TG_ARG_VALUE) tg_value_ref(extra[j].value);
  }
  return tg__graph_append(g, f, args, k + nextra, opts, 0, TG__NK_CHUNK,
                          (uint32_t)k);
}

int tg_graph_map(tg_graph *g, const char *fn, const tg_arg *inputs, size_t n,
                 const tg_arg *extra, size_t nextra, size_t chunksize,
                 const tg_node_opts *opts, tg_node *out) {
  int rc;
  if (!g || !fn || !out || (n && !inputs) || (nextra && !extra)) {
    if (g) tg__graph_fail(g, TG_EINVAL, "tg_graph_map: missing argument");
    return map_fail(inputs, n, extra, nextra, TG_EINVAL);
  }
  const tg_func *f = tg__graph_lookup(g, fn);
  if (!f) {
    const char *s = tg_registry_suggest(g->reg, fn);
    tg__graph_fail(g, TG_ENOFUNC, "no function named '%s'%s%s%s", fn,
                   s ? " (did you mean '" : "", s ? s : "", s ? "'?)" : "");
    return map_fail(inputs, n, extra, nextra, TG_ENOFUNC);
  }
  if (f->nargs >= 0 && (size_t)f->nargs != 1 + nextra) {
    tg__graph_fail(g, TG_EINVAL, "map of '%s': it takes %d arguments, a map passes %zu",
                   fn, f->nargs, 1 + nextra);
    return map_fail(inputs, n, extra, nextra, TG_EINVAL);
  }
  if (chunksize == 0) chunksize = pick_chunksize(n);
  size_t nchunks = (n + chunksize - 1) / chunksize;
  size_t kin, kex, keylen;
  if ((rc = tg__graph_check_args(g, f, inputs, n, false, &kin)) ||
      (rc = tg__graph_check_args(g, f, extra, nextra, false, &kex)) ||
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
    links[c] = tg_arg_node(add_chunk(g, f, inputs, lo, hi, extra, nextra,
                                     opts ? &chunk_opts : NULL, args));
  }
  if (extra) tg__graph_drop_values(extra, nextra); /* each chunk took a ref */
  *out = tg__graph_append(g, f, links, nchunks, opts, keylen, TG__NK_CONCAT, 0);
  tg__free(args);
  return TG_OK;
}
