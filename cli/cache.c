/* cli/cache.c: `tgraph cache info|list|check|clear|prune|zero-stats`:
 * look after the result cache. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"

/* What the options of cache and its subcommands set. */
typedef struct cache_args {
  const char *dir;
  uint64_t max_size;
  bool have_max, json, on_network_fs;
  unsigned check_flags;
} cache_args;

enum { O_CACHE_DIR = 1, O_MAX_SIZE, O_REPAIR, O_JSON, O_CACHE_NETWORK };

static int option(void *ctx, int id, const char *value) {
  cache_args *a = ctx;
  switch (id) {
    case O_CACHE_DIR: a->dir = value; break;
    case O_MAX_SIZE:
      if (!cli_parse_size(value, &a->max_size))
        return cli_bad_usage("cache prune", "--max-size needs a size such as 500M or 2G, "
                             "not '%s'", value);
      a->have_max = true;
      break;
    case O_REPAIR: a->check_flags |= TG_CACHE_CHECK_REPAIR; break;
    case O_JSON: a->json = true; break;
    case O_CACHE_NETWORK: a->on_network_fs = true; break;
  }
  return -1;
}

/* Options of cache itself, also accepted after the subcommand. */
static const cli_opt common[] = {
    {O_CACHE_DIR, "cache-dir", 0, "DIR", "the cache directory (default: $TGRAPH_CACHE_DIR,\n"
                                         "$XDG_CACHE_HOME/tgraph or ~/.cache/tgraph)"},
    {O_CACHE_NETWORK, "cache-on-network-fs", 0, NULL,
     "open the cache even on a network or FUSE file\nsystem (also TGRAPH_CACHE_ON_NETWORK_FS=1)"},
    {0, NULL, 0, NULL, NULL}};

static const cli_cmd command = {
    .name = "cache",
    .synopsis = "[options] info|list|check|clear|prune|zero-stats [options]",
    .about = "  info                   entries, sizes, the size limit, and hits, misses\n"
             "                         and stores of the runs (in total and the last)\n"
             "  list [--json]          one line per entry, most recently used first\n"
             "                         (--json: one JSON object)\n"
             "  check [--repair]       verify every entry and blob file; report each\n"
             "                         bad entry, orphan blob and abandoned temporary\n"
             "                         file (--repair: remove them); exit 1 if any\n"
             "  clear                  remove every entry\n"
             "  prune --max-size SIZE  remove least recently used entries until the\n"
             "                         cache holds at most SIZE (e.g. 500M, 2G)\n"
             "  zero-stats             start the run statistics of 'info' over\n"
             "\n"
             "tgraph cache COMMAND --help shows a command's options; options may come\n"
             "before or after COMMAND.\n",
    .opts = common,
    .set = option,
    .stop_at_arg = true,
};

typedef struct subcommand {
  cli_cmd cmd;
  int (*fn)(tg_cache *c, const char *dir, const cache_args *a);
} subcommand;

static int info(tg_cache *c, const char *dir, const cache_args *a);
static int list(tg_cache *c, const char *dir, const cache_args *a);
static int check(tg_cache *c, const char *dir, const cache_args *a);
static int clear(tg_cache *c, const char *dir, const cache_args *a);
static int prune(tg_cache *c, const char *dir, const cache_args *a);
static int zero_stats(tg_cache *c, const char *dir, const cache_args *a);

static const subcommand subcommands[] = {
    {{.name = "cache info", .synopsis = "[options]",
      .about = "Entries, sizes and the size limit of the cache, and the hits, misses\n"
               "and stores of the runs that used it (in total and the last run).\n",
      .inherited = common, .set = option}, info},
    {{.name = "cache list", .synopsis = "[options]",
      .about = "One line per entry, most recently used first.\n",
      .opts = (const cli_opt[]){{O_JSON, "json", 0, NULL,
                                 "one JSON object: {\"directory\", \"entries\": [...]}"},
                                {0, NULL, 0, NULL, NULL}},
      .inherited = common, .set = option}, list},
    {{.name = "cache check", .synopsis = "[options]",
      .about = "Verify every entry and blob file; report each bad entry, orphan blob\n"
               "and abandoned temporary file. Exit status 1 if there is any.\n",
      .opts = (const cli_opt[]){{O_REPAIR, "repair", 0, NULL, "remove what is bad"},
                                {0, NULL, 0, NULL, NULL}},
      .inherited = common, .set = option}, check},
    {{.name = "cache clear", .synopsis = "[options]",
      .about = "Remove every entry.\n", .inherited = common, .set = option}, clear},
    {{.name = "cache prune", .synopsis = "--max-size SIZE [options]",
      .about = "Remove least recently used entries until the cache holds at most\n"
               "SIZE.\n",
      .opts = (const cli_opt[]){{O_MAX_SIZE, "max-size", 0, "SIZE",
                                 "the most the cache may hold (e.g. 500M, 2G)"},
                                {0, NULL, 0, NULL, NULL}},
      .inherited = common, .set = option}, prune},
    {{.name = "cache zero-stats", .synopsis = "[options]",
      .about = "Start the run statistics that 'info' shows over.\n",
      .inherited = common, .set = option}, zero_stats},
};

typedef struct entries {
  tg_cache_entry_info *v;
  size_t n, cap;
} entries;

static int collect(void *ctx, const tg_cache_entry_info *e) {
  entries *es = ctx;
  if (es->n == es->cap) {
    size_t cap = es->cap ? es->cap * 2 : 64;
    tg_cache_entry_info *v = realloc(es->v, cap * sizeof *v);
    if (v == NULL) return 1;
    es->v = v;
    es->cap = cap;
  }
  es->v[es->n++] = *e;
  return 0;
}

static int by_last_used(const void *a, const void *b) {
  double x = ((const tg_cache_entry_info *)a)->last_used,
         y = ((const tg_cache_entry_info *)b)->last_used;
  return x < y ? 1 : x > y ? -1 : 0;
}

static void when(double t, char *buf, size_t size) {
  time_t s = (time_t)t;
  struct tm tm;
  localtime_r(&s, &tm);
  strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm);
}

/* `cache list --json`: {"directory": DIR, "entries": [{"key", "function",
 * "size", "in_blob", "created", "last_used", "compute_seconds"}, ...]},
 * most recently used first; times are Unix seconds. */
static void list_json(const entries *es, const char *dir) {
  printf("{\"directory\": ");
  cli_json_string(stdout, dir);
  printf(", \"entries\": [");
  for (size_t i = 0; i < es->n; i++) {
    const tg_cache_entry_info *e = &es->v[i];
    char hex[33];
    tg_digest_hex(e->key, hex);
    printf("%s\n  {\"key\": \"%s\", \"function\": ", i ? "," : "", hex);
    cli_json_string(stdout, e->function);
    printf(", \"size\": %llu, \"in_blob\": %s, \"created\": %.6f, \"last_used\": %.6f, "
           "\"compute_seconds\": %.9g}", (unsigned long long)e->size,
           e->in_blob ? "true" : "false", e->created, e->last_used, e->compute_seconds);
  }
  printf("%s]}\n", es->n ? "\n" : "");
}

/* c is NULL for a cache directory that does not exist (yet). */
static int list(tg_cache *c, const char *dir, const cache_args *a) {
  bool json = a->json;
  entries es = {0};
  int rc = c ? tg_cache_list(c, collect, &es) : TG_OK;
  if (rc != TG_OK) {
    free(es.v);
    cli_error("cannot list the cache: %s", tg_cache_errmsg(c));
    return CLI_TASK_FAILED;
  }
  if (es.n > 1) qsort(es.v, es.n, sizeof *es.v, by_last_used);
  if (json) {
    list_json(&es, dir);
    free(es.v);
    return CLI_OK;
  }
  printf("%-32s %10s  %-19s  %8s  %s\n", "key", "size", "last used",
         "compute", "function");
  for (size_t i = 0; i < es.n; i++) {
    char hex[33], size[32], used[32];
    tg_digest_hex(es.v[i].key, hex);
    when(es.v[i].last_used, used, sizeof used);
    printf("%s %10s  %s  %7.3fs  %s\n", hex,
           cli_format_size(es.v[i].size, size, sizeof size), used,
           es.v[i].compute_seconds, es.v[i].function);
  }
  free(es.v);
  return CLI_OK;
}

/* "N (last run M)" of one counter. */
static void counter(const char *name, uint64_t total, uint64_t last) {
  printf("%-10s %llu (last run %llu)\n", name, (unsigned long long)total,
         (unsigned long long)last);
}

static void bytes(const char *name, uint64_t total, uint64_t last) {
  char a[32], b[32];
  printf("%-10s %s (last run %s)\n", name, cli_format_size(total, a, sizeof a),
         cli_format_size(last, b, sizeof b));
}

static void hit_rate(const tg_cache_run_counts *t, const tg_cache_run_counts *l) {
  uint64_t n = t->hits + t->misses, m = l->hits + l->misses;
  printf("hit rate:  ");
  if (n) printf("%.1f%%", 100.0 * (double)t->hits / (double)n);
  else printf("-");
  if (m) printf(" (last run %.1f%%)\n", 100.0 * (double)l->hits / (double)m);
  else printf(" (last run -)\n");
}

/* The statistics the runs left in the cache (ccache -s). */
static int run_stats(tg_cache *c) {
  tg_cache_stats st;
  if (tg_cache_get_stats(c, &st) != TG_OK) {
    cli_error("cannot read the cache's statistics: %s", tg_cache_errmsg(c));
    return CLI_TASK_FAILED;
  }
  char since[32], last[32];
  if (st.since > 0) when(st.since, since, sizeof since);
  if (st.last_time > 0) when(st.last_time, last, sizeof last);
  printf("runs:      %llu since %s\n", (unsigned long long)st.runs,
         st.since > 0 ? since : "the cache was made");
  printf("last run:  %s\n", st.last_time > 0 ? last : "none");
  counter("hits:", st.total.hits, st.last.hits);
  counter("misses:", st.total.misses, st.last.misses);
  counter("stores:", st.total.stores, st.last.stores);
  bytes("read:", st.total.bytes_read, st.last.bytes_read);
  bytes("written:", st.total.bytes_written, st.last.bytes_written);
  hit_rate(&st.total, &st.last);
  return CLI_OK;
}

static int info(tg_cache *c, const char *dir, const cache_args *ca) {
  (void)ca;
  tg_cache_info in = {0};
  if (c && tg_cache_get_info(c, &in) != TG_OK) {
    cli_error("cannot read the cache: %s", tg_cache_errmsg(c));
    return CLI_TASK_FAILED;
  }
  char a[32], b[32], m[32];
  printf("directory: %s%s\n", dir, c ? "" : " (does not exist yet)");
  printf("entries:   %llu\n", (unsigned long long)in.entries);
  printf("size:      %s (%s in blob files)\n", cli_format_size(in.bytes, a, sizeof a),
         cli_format_size(in.blob_bytes, b, sizeof b));
  printf("limit:     %s\n", in.max_size ? cli_format_size(in.max_size, m, sizeof m)
                                        : "none");
  return c ? run_stats(c) : CLI_OK;
}

static int prune(tg_cache *c, const char *dir, const cache_args *a) {
  (void)dir;
  uint64_t max = a->max_size;
  uint64_t removed = 0;
  if (c && tg_cache_prune(c, max, &removed) != TG_OK) {
    cli_error("cannot prune the cache: %s", tg_cache_errmsg(c));
    return CLI_TASK_FAILED;
  }
  printf("removed %llu entr%s\n", (unsigned long long)removed,
         removed == 1 ? "y" : "ies");
  return CLI_OK;
}

static void problem(void *ctx, const tg_cache_problem *p) {
  (void)ctx;
  char hex[33];
  const char *done = p->repaired ? " (removed)" : "";
  if (p->fault == TG_CACHE_FAULT_ENTRY) {
    tg_digest_hex(p->key, hex);
    printf("bad entry %s: %s%s\n", hex, p->what, done);
  } else {
    printf("%s %s%s\n",
           p->fault == TG_CACHE_FAULT_ORPHAN ? "orphan blob (no entry refers to it):"
                                             : "abandoned temporary file (its writer is gone):",
           p->path, done);
  }
}

/* c is NULL for a cache directory that does not exist (yet). */
static int check(tg_cache *c, const char *dir, const cache_args *a) {
  (void)dir;
  unsigned flags = a->check_flags;
  tg_cache_check_report r = {0};
  if (c && tg_cache_check(c, flags, problem, NULL, &r) != TG_OK) {
    cli_error("cannot check the cache: %s", tg_cache_errmsg(c));
    return CLI_TASK_FAILED;
  }
  uint64_t bad = r.bad_entries + r.orphan_blobs + r.stale_tmp;
  printf("checked %llu entr%s and %llu blob file%s: ", (unsigned long long)r.entries,
         r.entries == 1 ? "y" : "ies", (unsigned long long)r.blob_files,
         r.blob_files == 1 ? "" : "s");
  if (!bad) {
    printf("no problems\n");
    return CLI_OK;
  }
  printf("%llu problem%s", (unsigned long long)bad, bad == 1 ? "" : "s");
  if (flags & TG_CACHE_CHECK_REPAIR) printf(", %llu removed", (unsigned long long)r.repaired);
  printf("\n");
  return CLI_TASK_FAILED;
}

/* c is NULL for a cache directory that does not exist (yet). */
static int zero_stats(tg_cache *c, const char *dir, const cache_args *a) {
  (void)a;
  if (c && tg_cache_zero_stats(c) != TG_OK) {
    cli_error("cannot zero the statistics: %s", tg_cache_errmsg(c));
    return CLI_TASK_FAILED;
  }
  printf("statistics of %s start over\n", dir);
  return CLI_OK;
}

static int clear(tg_cache *c, const char *dir, const cache_args *a) {
  (void)a;
  if (c && tg_cache_clear(c) != TG_OK) {
    cli_error("cannot clear the cache: %s", tg_cache_errmsg(c));
    return CLI_TASK_FAILED;
  }
  printf("cleared %s\n", dir);
  return CLI_OK;
}

/* The subcommand named args[0] and its options: sets *sub, or returns an
 * exit status. */
static int parse_sub(int argc, char **argv, char **args, int nargs, cache_args *a,
                     const subcommand **sub) {
  if (nargs == 0) return cli_bad_usage("cache", "missing command (info, list, check, "
                                       "clear, prune or zero-stats)");
  for (size_t k = 0; k < sizeof subcommands / sizeof subcommands[0]; k++)
    if (strcmp(args[0], subcommands[k].cmd.name + strlen("cache ")) == 0) *sub = &subcommands[k];
  if (*sub == NULL) return cli_bad_usage("cache", "unknown command '%s'", args[0]);
  int at = 1;
  while (at < argc && argv[at] != args[0]) at++; /* options before it are read */
  char **rest = NULL;
  int nrest = 0, rc = cli_opts_parse(&(*sub)->cmd, argc - at, argv + at, a, &rest, &nrest);
  if (rc < 0) rc = cli_opts_count(&(*sub)->cmd, rest, nrest, 0, 0, "");
  free(rest);
  if (rc < 0 && (*sub)->fn == prune && !a->have_max)
    rc = cli_bad_usage("cache prune", "needs --max-size SIZE (e.g. 500M)");
  return rc;
}

int cli_cache(int argc, char **argv) {
  cache_args a = {0};
  const subcommand *sub = NULL;
  char **args = NULL;
  int nargs = 0, rc = cli_opts_parse(&command, argc, argv, &a, &args, &nargs);
  if (rc < 0) rc = parse_sub(argc, argv, args, nargs, &a, &sub);
  free(args);
  if (rc >= 0) return rc;
  const char *dir = a.dir;
  char buf[4096];
  if (dir == NULL && !cli_default_cache_dir(buf, sizeof buf)) {
    cli_error("no cache directory: set TGRAPH_CACHE_DIR or pass --cache-dir");
    return CLI_USAGE;
  }
  if (dir == NULL) dir = buf;
  tg_cache *c = NULL;
  tg_error err;
  tg_error_clear(&err);
  struct stat st;
  /* Looking at a cache must not create one: a missing directory is an
   * empty cache. */
  bool missing = stat(dir, &st) != 0 && errno == ENOENT;
  tg_cache_opts co = {.version = TG_CACHE_OPTS_V2, .allow_network_fs = a.on_network_fs};
  if (!missing && tg_cache_open(dir, &co, &c, &err) != TG_OK) {
    cli_error("cannot open the cache: %s", err.msg);
    return CLI_TASK_FAILED;
  }
  /* Only a damaged cache warns here: that it was moved aside is news to
   * the user whatever the command (read-only is not: info works anyway). */
  const char *warning = c ? tg_cache_warning(c) : NULL;
  if (warning && strstr(warning, " damaged (data.mdb: ")) cli_warn("%s", warning);
  rc = sub->fn(c, dir, &a);
  if (c) tg_cache_close(c);
  return rc;
}
