/* cli/explain.c: `tgraph run --explain`: a dry run (tg_compute_explain)
 * that lists, for every task the outputs need, whether it would be served
 * from the cache or run, and why. Nothing is computed. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef struct explain_ctx {
  const tg_graphjson_info *info;
  const tg_graph *g;
  const tg_cache *cache;
  uint32_t *task_of; /* graph node -> index in info->tasks, or UINT32_MAX */
  size_t nodes;      /* graph nodes, the length of task_of */
  bool *reported;    /* per info task: listed by the dry run */
  size_t run, cached;
} explain_ctx;

/* Why a task runs when there is no cache to say more: what would keep
 * it from being cached anyway. */
static const char *no_cache_reason(const explain_ctx *c, const tg_explain_task *t,
                                   uint32_t task) {
  const tg_func *f = tg_node_func(c->g, t->node);
  int opt = task != UINT32_MAX ? c->info->tasks[task].cache : -1;
  if (strcmp(t->function, "write_file") == 0) return "a side effect: never cached";
  if (opt == 0) return "the task says \"cache\": false";
  if (f && !(tg_func_flags(f) & TG_FUNC_PURE) && opt != 1)
    return "impure function: never cached (add \"cache\": true to allow)";
  return "no cache";
}

/* The library's reason in the words of a graph.json author. */
static const char *reason(const explain_ctx *c, const tg_explain_task *t,
                          uint32_t task) {
  if (c->cache == NULL) return no_cache_reason(c, t, task);
  if (t->state == TG_EXPLAIN_UNCACHEABLE) {
    if (strcmp(t->function, "write_file") == 0) return "a side effect: never cached";
    if (strcmp(t->why, "impure function") == 0)
      return "impure function: never cached (add \"cache\": true to allow)";
    if (strcmp(t->why, "opted out (cache = 0)") == 0)
      return "the task says \"cache\": false";
  }
  return t->why;
}

static int on_task(void *arg, const tg_explain_task *t) {
  explain_ctx *c = arg;
  bool cached = t->state == TG_EXPLAIN_CACHED;
  uint32_t task = t->node < c->nodes ? c->task_of[t->node] : UINT32_MAX;
  if (task == UINT32_MAX) return 0; /* a part of a task the reader made (tg.build) */
  printf("  %-7s %-20s %-16s %s\n", cached ? "cached" : "run", t->key, t->function,
         reason(c, t, task));
  if (cached) c->cached++;
  else c->run++;
  c->reported[task] = true;
  return 0;
}

int cli_explain(const tg_graphjson_info *info, const bool *needed, tg_graph *g,
                tg_cache *cache, const char *cache_dir) {
  size_t nodes = tg_graph_size(g);
  explain_ctx c = {info, g, cache, malloc((nodes + 1) * sizeof *c.task_of), nodes,
                   calloc(info->ntasks + 1, sizeof *c.reported), 0, 0};
  if (c.task_of == NULL || c.reported == NULL) {
    free(c.task_of);
    free(c.reported);
    cli_error("out of memory");
    return CLI_USAGE;
  }
  for (size_t i = 0; i < nodes; i++) c.task_of[i] = UINT32_MAX;
  for (size_t i = 0; i < info->ntasks; i++) c.task_of[info->tasks[i].node] = (uint32_t)i;
  printf("explain: %s\n", cache ? cache_dir : "no cache");
  tg_compute_opts co = {.version = TG_COMPUTE_OPTS_V1, .cache = cache};
  int rc = tg_compute_explain(g, info->output_nodes, info->noutputs, &co, on_task, &c);
  size_t below = 0, unneeded = 0;
  for (size_t i = 0; i < info->ntasks; i++) {
    unneeded += !needed[i];
    below += needed[i] && !c.reported[i];
  }
  free(c.task_of);
  free(c.reported);
  if (rc != TG_OK) {
    fflush(stdout);
    cli_error("%s", tg_graph_errmsg(g));
    return CLI_USAGE;
  }
  printf("%zu task%s would run, %zu cached; skipped: %zu below cached results, "
         "%zu not needed by the outputs\n",
         c.run, c.run == 1 ? "" : "s", c.cached, below, unneeded);
  return fflush(stdout) == 0 ? CLI_OK : CLI_USAGE;
}
