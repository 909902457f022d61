/* cli/explain.c: `tgraph run --explain`: a dry run that lists, for every
 * task the outputs need, whether it would run or be served from the
 * cache, and why. Nothing is computed. */
#include <string.h>

#include "cli.h"

/* Why task t would run (or NULL when it would be served from the cache). */
static const char *reason(const tg_graphjson_task *t, const tg_func *f,
                          const tg_cache *cache) {
  bool pure = (tg_func_flags(f) & TG_FUNC_PURE) != 0;
  if (strcmp(t->fn, "write_file") == 0) return "a side effect: never cached";
  if (!pure && t->cache != 1)
    return "impure function: never cached (add \"cache\": true to allow)";
  if (t->cache == 0) return "the task says \"cache\": false";
  if (cache == NULL) return "no cache";
  return "pure: computed unless its result is in the cache";
}

int cli_explain(const tg_graphjson_info *info, const bool *needed,
                tg_registry *reg, tg_cache *cache, const char *cache_dir) {
  size_t n = 0, skipped = 0;
  printf("explain: %s\n", cache ? cache_dir : "no cache");
  for (size_t i = 0; i < info->ntasks; i++) {
    const tg_graphjson_task *t = &info->tasks[i];
    if (!needed[i]) {
      skipped++;
      continue;
    }
    const tg_func *f = tg_registry_find(reg, t->fn);
    printf("  run     %-20s %-16s %s\n", t->key, t->fn, reason(t, f, cache));
    n++;
  }
  printf("%zu task%s would run; %zu not needed by the outputs\n", n,
         n == 1 ? "" : "s", skipped);
  return fflush(stdout) == 0 ? CLI_OK : CLI_USAGE;
}
