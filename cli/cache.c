/* cli/cache.c: `tgraph cache info|list|check|clear|prune|zero-stats`:
 * look after the result cache. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"

static const char usage[] =
    "usage: tgraph cache [--cache-dir DIR] info|list|check|clear|prune|zero-stats\n"
    "                    [options]\n"
    "\n"
    "  info                   entries, sizes, the size limit, and hits, misses\n"
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
    "The directory is --cache-dir, else $TGRAPH_CACHE_DIR, else\n"
    "$XDG_CACHE_HOME/tgraph, else ~/.cache/tgraph.\n";

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
static int list(tg_cache *c, const char *dir, bool json) {
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

static int info(tg_cache *c, const char *dir) {
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

static int prune(tg_cache *c, int argc, char **argv) {
  uint64_t max = 0;
  bool have = false;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--max-size") == 0 && i + 1 < argc &&
        cli_parse_size(argv[i + 1], &max)) {
      have = true;
      i++;
    } else if (strncmp(argv[i], "--max-size=", 11) == 0 &&
               cli_parse_size(argv[i] + 11, &max)) {
      have = true;
    } else {
      fprintf(stderr, "tgraph cache prune: unexpected '%s'\n", argv[i]);
      return CLI_USAGE;
    }
  }
  if (!have) {
    fprintf(stderr, "tgraph cache prune: needs --max-size SIZE (e.g. 500M)\n");
    return CLI_USAGE;
  }
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
static int check(tg_cache *c, int argc, char **argv) {
  unsigned flags = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--repair") == 0) {
      flags |= TG_CACHE_CHECK_REPAIR;
    } else {
      fprintf(stderr, "tgraph cache check: unexpected '%s'\n", argv[i]);
      return CLI_USAGE;
    }
  }
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
static int zero_stats(tg_cache *c, const char *dir) {
  if (c && tg_cache_zero_stats(c) != TG_OK) {
    cli_error("cannot zero the statistics: %s", tg_cache_errmsg(c));
    return CLI_TASK_FAILED;
  }
  printf("statistics of %s start over\n", dir);
  return CLI_OK;
}

int cli_cache(int argc, char **argv) {
  const char *dir = NULL;
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      fputs(usage, stdout);
      return CLI_OK;
    } else if (strcmp(argv[i], "--cache-dir") == 0 && i + 1 < argc) {
      dir = argv[++i];
    } else if (strncmp(argv[i], "--cache-dir=", 12) == 0) {
      dir = argv[i] + 12;
    } else {
      return cli_bad_usage("cache", "unexpected '%s'", argv[i]);
    }
  }
  const char *sub = i < argc ? argv[i] : NULL;
  if (sub == NULL || (strcmp(sub, "info") && strcmp(sub, "list") && strcmp(sub, "check") &&
                      strcmp(sub, "clear") && strcmp(sub, "prune") &&
                      strcmp(sub, "zero-stats"))) {
    fprintf(stderr, "tgraph cache: %s%s%s\n%s", sub ? "unknown command '" : "",
            sub ? sub : "missing command", sub ? "'" : "", usage);
    return CLI_USAGE;
  }
  bool json = strcmp(sub, "list") == 0 && i + 2 == argc && strcmp(argv[i + 1], "--json") == 0;
  if (strcmp(sub, "prune") != 0 && strcmp(sub, "check") != 0 && i + 1 < argc && !json) {
    fprintf(stderr, "tgraph cache %s: unexpected '%s'\n", sub, argv[i + 1]);
    return CLI_USAGE;
  }
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
  if (!missing && tg_cache_open(dir, NULL, &c, &err) != TG_OK) {
    cli_error("cannot open the cache: %s", err.msg);
    return CLI_TASK_FAILED;
  }
  /* Only a damaged cache warns here: that it was moved aside is news to
   * the user whatever the command (read-only is not: info works anyway). */
  const char *warning = c ? tg_cache_warning(c) : NULL;
  if (warning && strstr(warning, " damaged (data.mdb: ")) cli_warn("%s", warning);
  int rc;
  if (strcmp(sub, "info") == 0) rc = info(c, dir);
  else if (strcmp(sub, "list") == 0) rc = list(c, dir, json);
  else if (strcmp(sub, "zero-stats") == 0) rc = zero_stats(c, dir);
  else if (strcmp(sub, "prune") == 0) rc = prune(c, argc - i, argv + i);
  else if (strcmp(sub, "check") == 0) rc = check(c, argc - i, argv + i);
  else if (!c || tg_cache_clear(c) == TG_OK) rc = (printf("cleared %s\n", dir), CLI_OK);
  else {
    cli_error("cannot clear the cache: %s", tg_cache_errmsg(c));
    rc = CLI_TASK_FAILED;
  }
  if (c) tg_cache_close(c);
  return rc;
}
