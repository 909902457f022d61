/* cli/explain.c: `tgraph run --explain` and `--check`: a dry run
 * (tg_compute_explain) over every task the outputs need: whether it would
 * be served from the cache or run, and why. Nothing is computed.
 *
 * Three ways to show it: lines for a person; one JSON object (--json, the
 * shape is documented in the README, "--explain --json"); or, for
 * --check, nothing but the exit status (0: every output is cached,
 * 1: something would run), with -v the tasks that would run. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef struct explain_ctx {
  const tg_graphjson_info *info;
  const tg_graph *g;
  const tg_cache *cache;
  cli_explain_mode mode;
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
  if (t->state == TG_EXPLAIN_FORCED && strcmp(t->why, "forced") == 0)
    return "forced (--force)";
  return t->why;
}

static const char *state_name(tg_explain_state s) {
  switch (s) {
    case TG_EXPLAIN_CACHED: return "cached";
    case TG_EXPLAIN_RUN: return "run";
    case TG_EXPLAIN_INPUT_CHANGED: return "input_changed";
    case TG_EXPLAIN_FUNC_CHANGED: return "function_changed";
    case TG_EXPLAIN_UNCACHEABLE: return "uncacheable";
    case TG_EXPLAIN_FORCED: return "forced";
  }
  return "run";
}

static const char *note_name(tg_explain_note n) {
  switch (n) {
    case TG_NOTE_UNDER_THRESHOLD: return "under_threshold";
    case TG_NOTE_FAST_FUNCTION: return "fast_function";
    case TG_NOTE_STORE_FAILED: return "store_failed";
    case TG_NOTE_UNSTORABLE: return "unstorable";
    default: return NULL;
  }
}

static void json_number(const char *name, double v) {
  if (v < 0) printf(", \"%s\": null", name);
  else printf(", \"%s\": %.9g", name, v);
}

static void json_task(const explain_ctx *c, const tg_explain_task *t, const char *why) {
  printf("%s\n    {\"key\": ", c->run + c->cached ? "," : "");
  cli_json_string(stdout, t->key);
  printf(", \"function\": ");
  cli_json_string(stdout, t->function);
  printf(", \"state\": \"%s\", \"runs\": %s, \"reason\": ", state_name(t->state),
         t->state == TG_EXPLAIN_CACHED ? "false" : "true");
  cli_json_string(stdout, why);
  printf(", \"cache_key\": \"%s\", \"note\": ", t->cache_key);
  const char *note = note_name(t->note);
  if (note) printf("\"%s\"", note);
  else printf("null");
  json_number("seconds", t->seconds);
  json_number("threshold", t->threshold);
  printf("}");
}

static int on_task(void *arg, const tg_explain_task *t) {
  explain_ctx *c = arg;
  bool cached = t->state == TG_EXPLAIN_CACHED;
  uint32_t task = t->node < c->nodes ? c->task_of[t->node] : UINT32_MAX;
  if (task == UINT32_MAX) return 0; /* a part of a task the reader made (tg.build) */
  const char *why = reason(c, t, task);
  if (c->mode == CLI_EXPLAIN_JSON)
    json_task(c, t, why);
  else if (c->mode == CLI_EXPLAIN_TEXT || (!cached && cli_verbosity > 0))
    printf("  %-7s %-20s %-16s %s\n", cached ? "cached" : "run", t->key, t->function,
           why);
  if (cached) c->cached++;
  else c->run++;
  c->reported[task] = true;
  return 0;
}

static void header(const explain_ctx *c, const char *cache_dir) {
  if (c->mode == CLI_EXPLAIN_TEXT) {
    printf("explain: %s\n", c->cache ? cache_dir : "no cache");
  } else if (c->mode == CLI_EXPLAIN_JSON) {
    printf("{\"cache\": ");
    if (c->cache) cli_json_string(stdout, cache_dir);
    else printf("null");
    printf(", \"tasks\": [");
  }
}

static void footer(const explain_ctx *c, size_t below, size_t unneeded) {
  if (c->mode == CLI_EXPLAIN_TEXT)
    printf("%zu task%s would run, %zu cached; skipped: %zu below cached results, "
           "%zu not needed by the outputs\n",
           c->run, c->run == 1 ? "" : "s", c->cached, below, unneeded);
  else if (c->mode == CLI_EXPLAIN_JSON)
    printf("%s],\n \"summary\": {\"run\": %zu, \"cached\": %zu, \"below_cached\": %zu, "
           "\"not_needed\": %zu}}\n", c->run + c->cached ? "\n  " : "", c->run, c->cached,
           below, unneeded);
}

int cli_explain(const tg_graphjson_info *info, const bool *needed, tg_graph *g,
                tg_cache *cache, const char *cache_dir, const cli_make *make,
                cli_explain_mode mode) {
  size_t nodes = tg_graph_size(g);
  explain_ctx c = {info, g, cache, mode, malloc((nodes + 1) * sizeof *c.task_of), nodes,
                   calloc(info->ntasks + 1, sizeof *c.reported), 0, 0};
  if (c.task_of == NULL || c.reported == NULL) {
    free(c.task_of);
    free(c.reported);
    cli_error("out of memory");
    return CLI_USAGE;
  }
  for (size_t i = 0; i < nodes; i++) c.task_of[i] = UINT32_MAX;
  for (size_t i = 0; i < info->ntasks; i++) c.task_of[info->tasks[i].node] = (uint32_t)i;
  header(&c, cache_dir);
  tg_compute_opts co = {.version = TG_COMPUTE_OPTS_V1, .cache = cache};
  cli_make_compute_opts(make, &co);
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
  footer(&c, below, unneeded);
  if (fflush(stdout) != 0) return CLI_USAGE;
  if (mode == CLI_EXPLAIN_CHECK) return c.run ? CLI_TASK_FAILED : CLI_OK;
  return CLI_OK;
}
