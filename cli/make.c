/* cli/make.c: the make-like options of `tgraph run`: --force KEY,
 * --min-compute SECONDS, --cache-all, --check and --json. Each parser
 * below takes one option's value; the rest turns them into library
 * options once the graph is loaded. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_make_force(cli_make *m, const char *key, int max) {
  if (m->keys == NULL && (m->keys = calloc((size_t)max + 1, sizeof *m->keys)) == NULL) {
    cli_error("out of memory");
    return CLI_USAGE;
  }
  m->keys[m->nkeys++] = key;
  return -1;
}

int cli_make_min_compute(cli_make *m, const char *arg) {
  double s;
  if (!cli_parse_seconds(arg, &s) || !isfinite(s))
    return cli_bad_usage("run", "--min-compute needs seconds (e.g. 0, 0.01, 5ms), "
                         "not '%s'", arg);
  m->min_compute = s;
  m->min_compute_set = true;
  return -1;
}

/* The task named key, or UINT32_MAX. */
static uint32_t task_named(const tg_graphjson_info *info, const char *key) {
  for (size_t i = 0; i < info->ntasks; i++)
    if (strcmp(info->tasks[i].key, key) == 0) return (uint32_t)i;
  return UINT32_MAX;
}

int cli_make_resolve(cli_make *m, const tg_graphjson_info *info) {
  if (m->nkeys == 0) return -1;
  if ((m->force = calloc(m->nkeys, sizeof *m->force)) == NULL) {
    cli_error("out of memory");
    return CLI_USAGE;
  }
  for (size_t i = 0; i < m->nkeys; i++) {
    uint32_t t = task_named(info, m->keys[i]);
    if (t == UINT32_MAX) {
      cli_error("--force '%s': the graph has no task of that key", m->keys[i]);
      return CLI_USAGE;
    }
    m->force[i] = info->tasks[t].node;
  }
  return -1;
}

void cli_make_cache_opts(const cli_make *m, tg_cache_opts *co) {
  memset(co, 0, sizeof *co);
  co->version = TG_CACHE_OPTS_V2;
  /* 0 means "the default" to the library: --min-compute 0 stores all. */
  if (m->min_compute_set)
    co->min_compute_seconds = m->min_compute > 0 ? m->min_compute : TG_CACHE_STORE_ALL;
  if (m->cache_all) co->min_compute_seconds = TG_CACHE_STORE_ALL;
}

void cli_make_compute_opts(const cli_make *m, tg_compute_opts *co) {
  if (co->version < TG_COMPUTE_OPTS_V3) co->version = TG_COMPUTE_OPTS_V3;
  co->force = m->force;
  co->nforce = m->nkeys;
}

void cli_make_free(cli_make *m) {
  free(m->keys);
  free(m->force);
}
