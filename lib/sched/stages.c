/* lib/sched/stages.c: a compute of a graph holding maps over node results
 * (tg_graph_map_node): the lists those maps need are computed first, the
 * maps expanded into chunk tasks over their items (lib/graph/expand.c
 * says why between runs rather than inside one), and so on until the
 * outputs need no unexpanded map; then the outputs run. Each stage is an
 * ordinary run on the same executor with the compute's options: events,
 * cache and cancellation behave as in one run, the statistics add up,
 * and the deadline covers all the stages. */
#include <stddef.h>
#include <string.h>

#include "sched_internal.h"

typedef struct frame {
  uint32_t node, arg;
} frame;

/* Maps the outputs need whose list is computable now (its node needs no
 * unexpanded map): their ids in *ready (n of them). */
static int find_ready(const tg_graph *g, const tg_node *outs, size_t nout, uint32_t **ready,
                      size_t *nready) {
  enum { UNSEEN = 0, OPEN = 1, PLAIN = 2, DYN = 3 };
  uint8_t *st = tg__calloc(g->n ? g->n : 1, 1);
  frame *stack = tg__malloc((g->n ? g->n : 1) * sizeof *stack);
  uint32_t *r = tg__malloc((g->n ? g->n : 1) * sizeof *r);
  size_t sp = 0, nr = 0;
  if (!st || !stack || !r) {
    tg__free(st), tg__free(stack), tg__free(r);
    return TG_ENOMEM;
  }
  for (size_t o = 0; o < nout; o++) {
    if (st[outs[o]]) continue;
    stack[sp++] = (frame){outs[o], 0};
    st[outs[o]] = OPEN;
    while (sp) { /* each node is pushed once: the stack never outgrows g->n */
      frame *f = &stack[sp - 1];
      const tg__gnode *nd = &g->nodes[f->node];
      const tg__garg *a = tg__node_args(g, nd);
      while (f->arg < nd->nargs &&
             (!tg__arg_is_node(a[f->arg].kind) || st[a[f->arg].node])) f->arg++;
      if (f->arg < nd->nargs) {
        uint32_t c = a[f->arg].node;
        st[c] = OPEN;
        stack[sp++] = (frame){c, 0};
        continue;
      }
      bool dyn = nd->kind == TG__NK_MAPOVER;
      for (uint32_t j = 0; j < nd->nargs && !dyn; j++)
        dyn = tg__arg_is_node(a[j].kind) && st[a[j].node] == DYN;
      if (nd->kind == TG__NK_MAPOVER && st[a[0].node] != DYN) r[nr++] = f->node;
      st[f->node] = dyn ? DYN : PLAIN;
      sp--;
    }
  }
  tg__free(st);
  tg__free(stack);
  *ready = r;
  *nready = nr;
  return TG_OK;
}

static void add_stats(tg_compute_stats *sum, const tg_compute_stats *s) {
  sum->tasks_total += s->tasks_total;
  sum->tasks_run += s->tasks_run;
  sum->tasks_cached += s->tasks_cached;
  sum->tasks_failed += s->tasks_failed;
  sum->tasks_skipped += s->tasks_skipped;
  if (s->peak_live > sum->peak_live) sum->peak_live = s->peak_live;
  if (s->failed_node != TG_NODE_NONE) sum->failed_node = s->failed_node;
  sum->cache_hits += s->cache_hits;
  sum->cache_misses += s->cache_misses;
  sum->cache_stores += s->cache_stores;
  sum->cache_bytes_read += s->cache_bytes_read;
  sum->cache_bytes_written += s->cache_bytes_written;
}

/* One stage: outputs on ex with opts (copied into o, with the time left
 * and our statistics). */
static int stage(tg_executor *ex, tg_graph *g, const tg_node *outs, size_t n,
                 tg_compute_opts *o, double deadline, tg_compute_stats *sum,
                 tg_value **results, bool *abandoned) {
  tg_compute_stats st;
  double timeout = o->timeout;
  o->stats = &st;
  if (deadline > 0) {
    double left = deadline - tg__now();
    if (left <= 0) {
      for (size_t i = 0; i < n; i++) results[i] = NULL;
      return tg__graph_fail(g, TG_ETIMEDOUT, "the compute timed out after %g s", timeout);
    }
    o->timeout = left;
  }
  int rc = tg__compute_run(ex, g, outs, n, o, results, abandoned);
  o->timeout = timeout;
  add_stats(sum, &st);
  return rc;
}

/* Expand the ready maps ready[0..n-1] over the lists computed for them. */
static int expand(tg_executor *ex, tg_graph *g, const uint32_t *ready, size_t n,
                  tg_compute_opts *o, double deadline, tg_compute_stats *sum,
                  bool *abandoned) {
  tg_node *over = tg__malloc(n * sizeof *over);
  tg_value **lists = tg__calloc(n, sizeof *lists);
  int rc = over && lists ? TG_OK : tg__graph_fail(g, TG_ENOMEM, "out of memory in a map");
  for (size_t i = 0; i < n && !rc; i++)
    over[i] = tg__node_args(g, &g->nodes[ready[i]])[0].node;
  if (!rc) rc = stage(ex, g, over, n, o, deadline, sum, lists, abandoned);
  for (size_t i = 0; i < n && !rc; i++) {
    if (tg_value_type(lists[i]) != TG_LIST) {
      char km[TG__NAME_MAX + 32], ko[TG__NAME_MAX + 32];
      rc = tg__graph_fail(g, TG_ETYPE, "task '%s' failed: TG_ETYPE: it maps over the result "
                          "of '%s', of type %s, not a list",
                          tg__graph_key(g, ready[i], km, sizeof km),
                          tg__graph_key(g, over[i], ko, sizeof ko),
                          tg_type_name(tg_value_type(lists[i])));
      sum->failed_node = ready[i];
      break;
    }
    rc = tg__graph_expand_map(g, ready[i], lists[i]);
  }
  for (size_t i = 0; lists && i < n; i++) tg_value_unref(lists[i]);
  tg__free(over);
  tg__free(lists);
  return rc;
}

int tg__compute_stages(tg_executor *ex, tg_graph *g, const tg_node *outputs, size_t n,
                       const tg_compute_opts *opts, tg_value **results, bool *abandoned) {
  for (size_t i = 0; i < n; i++)
    if (outputs[i] >= g->n)
      return tg__graph_fail(g, TG_EINVAL, "output %zu is node %u, but the graph has %zu "
                            "nodes", i, outputs[i], g->n);
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1};
  if (opts) memcpy(&o, opts, opts->version >= TG_COMPUTE_OPTS_V3 ? sizeof o
                             : opts->version == TG_COMPUTE_OPTS_V2
                                 ? offsetof(tg_compute_opts, progress)
                                 : offsetof(tg_compute_opts, cancel));
  double t0 = tg__now(), deadline = o.timeout > 0 ? t0 + o.timeout : 0;
  tg_compute_stats sum = {.failed_node = TG_NODE_NONE};
  int rc = TG_OK;
  for (;;) {
    uint32_t *ready;
    size_t nready;
    if ((rc = find_ready(g, outputs, n, &ready, &nready))) {
      tg__graph_fail(g, rc, "out of memory looking for maps to expand");
      break;
    }
    if (nready) rc = expand(ex, g, ready, nready, &o, deadline, &sum, abandoned);
    tg__free(ready);
    if (rc || !nready || *abandoned) break;
  }
  if (rc == TG_OK) rc = stage(ex, g, outputs, n, &o, deadline, &sum, results, abandoned);
  if (*abandoned) tg__graph_expand_close(g); /* a task still reads the graph */
  else tg__graph_expand_undo(g);
  sum.wall_seconds = tg__now() - t0;
  if (opts && opts->stats) *opts->stats = sum;
  return rc;
}
