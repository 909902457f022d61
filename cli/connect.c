/* cli/connect.c: the workers of `tgraph run --scheduler=tcp`: addresses
 * from --connect lists and --workers-file files, and the tcp executor the
 * run computes on. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tgraph/remote.h"

static int add(cli_workers *w, const char *s, size_t n) {
  while (n && (*s == ' ' || *s == '\t')) s++, n--;
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) n--;
  if (n == 0) return 0;
  if (w->n == w->cap) {
    size_t cap = w->cap ? w->cap * 2 : 8;
    char **a = realloc(w->addr, cap * sizeof *a);
    if (!a) return -1;
    w->addr = a;
    w->cap = cap;
  }
  char *copy = malloc(n + 1);
  if (!copy) return -1;
  memcpy(copy, s, n);
  copy[n] = '\0';
  w->addr[w->n++] = copy;
  return 0;
}

int cli_workers_add_list(cli_workers *w, const char *list) {
  for (const char *p = list;;) {
    const char *comma = strchr(p, ',');
    size_t n = comma ? (size_t)(comma - p) : strlen(p);
    if (add(w, p, n) != 0) return -1;
    if (!comma) return 0;
    p = comma + 1;
  }
}

/* A workers file lists addresses, ~30 bytes a line: 1 MiB is tens of
 * thousands of workers, and /dev/zero or an endless pipe fails fast. */
#define WORKERS_FILE_MAX ((size_t)1 << 20)

int cli_workers_add_file(cli_workers *w, const char *path) {
  char *text;
  size_t len;
  tg_error err;
  tg_error_clear(&err);
  if (tg_read_file(path, "workers file", WORKERS_FILE_MAX, &text, &len, &err) !=
      TG_OK) {
    cli_error("%s", err.msg);
    return -1;
  }
  int rc = 0;
  size_t lineno = 1;
  for (char *line = text; rc == 0 && line < text + len; lineno++) {
    char *end = memchr(line, '\n', (size_t)(text + len - line));
    if (end == NULL) end = text + len;
    char *hash = memchr(line, '#', (size_t)(end - line));
    size_t n = (size_t)((hash ? hash : end) - line);
    if (memchr(line, '\0', n) != NULL) {
      cli_error("workers file '%s': line %zu has a NUL byte (not a text file)",
                path, lineno);
      rc = -1;
    } else {
      rc = add(w, line, n);
    }
    line = end + 1;
  }
  free(text);
  return rc;
}

void cli_workers_free(cli_workers *w) {
  for (size_t i = 0; i < w->n; i++) free(w->addr[i]);
  free(w->addr);
  memset(w, 0, sizeof *w);
}

int cli_workers_executor(const cli_workers *w, const char *keys, tg_registry *reg,
                         tg_executor **out) {
  if (w->n == 0 && !w->join) {
    cli_error("--scheduler=tcp needs workers: --connect tcp://HOST:PORT[,...], "
              "--workers-file FILE or --join-listen tcp://HOST:PORT");
    return CLI_USAGE;
  }
  tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V2, .backend = "tcp",
                         .connect = (const char *const *)w->addr, .nconnect = w->n,
                         .keys_dir = keys, .join_listen = w->join};
  tg_error err;
  tg_error_clear(&err);
  if (tg_executor_new(reg, &eo, out, &err) != TG_OK) {
    cli_error("%s", err.msg);
    return CLI_USAGE;
  }
  char addr[512];
  if (w->join && tg_remote_join_address(*out, addr, sizeof addr) == TG_OK) {
    fprintf(stderr, "joining workers: %s\n", addr); /* whatever the verbosity: scripts read it */
    fflush(stderr);
  }
  return -1;
}

void cli_workers_report(tg_executor *ex) {
  tg_remote_stats st;
  char a[32], b[32], c[32];
  if (cli_verbosity < 1 || tg_remote_stats_get(ex, &st) != TG_OK) return;
  cli_info("tcp: %llu tasks in %llu messages; %s sent, %s received; %llu results "
           "kept on workers, %llu moved between them (%s); %llu workers lost, %llu "
           "tasks retried, %llu results recomputed",
           (unsigned long long)st.tasks_sent, (unsigned long long)st.batches_sent,
           cli_format_size(st.bytes_sent, a, sizeof a),
           cli_format_size(st.bytes_received, b, sizeof b),
           (unsigned long long)st.results_kept, (unsigned long long)st.values_moved,
           cli_format_size(st.bytes_moved, c, sizeof c), (unsigned long long)st.workers_lost,
           (unsigned long long)st.tasks_retried, (unsigned long long)st.tasks_recomputed);
}
