/* cli/util.c: helpers every subcommand uses: messages, colour, sizes,
 * durations, the cache and plugin directories, JSON strings. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

int cli_verbosity = 0;

/* A message is one write(2): stderr is unbuffered, and a launcher (mpirun,
 * srun) that forwards several ranks' stderr splices them at write
 * boundaries, so a line written in pieces came out mixed with another
 * rank's ("tgraph: tgraph: error: ..."). */
static void say(const char *what, const char *color, const char *fmt,
                va_list ap) {
  bool c = cli_color() && color != NULL;
  char *msg = NULL;
  if (vasprintf(&msg, fmt, ap) < 0) msg = NULL;
  const char *text = msg != NULL ? msg : fmt;
  if (what != NULL)
    fprintf(stderr, "tgraph: %s%s:%s %s\n", c ? color : "", what,
            c ? "\033[0m" : "", text);
  else
    fprintf(stderr, "tgraph: %s\n", text);
  free(msg);
}

void cli_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  say("error", "\033[1;31m", fmt, ap);
  va_end(ap);
}

int cli_bad_usage(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *msg = NULL;
  if (vasprintf(&msg, fmt, ap) < 0) msg = NULL;
  va_end(ap);
  fprintf(stderr, "tgraph %s: %s\n(see tgraph %s --help)\n", cmd,
          msg != NULL ? msg : fmt, cmd);
  free(msg);
  return CLI_USAGE;
}

void cli_warn(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  say("warning", "\033[1;33m", fmt, ap);
  va_end(ap);
}

void cli_info(const char *fmt, ...) {
  if (cli_verbosity < 0) return;
  va_list ap;
  va_start(ap, fmt);
  say(NULL, NULL, fmt, ap);
  va_end(ap);
}

bool cli_color(void) {
  const char *nc = getenv("NO_COLOR"), *term = getenv("TERM");
  if (nc != NULL && nc[0] != '\0') return false;
  if (term != NULL && strcmp(term, "dumb") == 0) return false;
  return isatty(2);
}

bool cli_parse_size(const char *s, uint64_t *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || errno != 0 || !(v >= 0)) return false;
  double mult = 1;
  switch (*end) {
    case 'k': case 'K': mult = 1024.0; end++; break;
    case 'm': case 'M': mult = 1024.0 * 1024; end++; break;
    case 'g': case 'G': mult = 1024.0 * 1024 * 1024; end++; break;
    case 't': case 'T': mult = 1024.0 * 1024 * 1024 * 1024; end++; break;
    default: break;
  }
  if (mult > 1 && (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0))
    end += strlen(end);
  else if (mult == 1 && strcmp(end, "B") == 0)
    end++;
  if (*end != '\0' || v * mult >= 1.8e19) return false;
  *out = (uint64_t)(v * mult);
  return true;
}

const char *cli_format_size(uint64_t bytes, char *buf, size_t size) {
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = (double)bytes;
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, u++;
  if (u == 0) snprintf(buf, size, "%llu B", (unsigned long long)bytes);
  else snprintf(buf, size, "%.1f %s", v, units[u]);
  return buf;
}

bool cli_parse_uint(const char *s, unsigned long max, unsigned long *out) {
  char *end;
  errno = 0;
  if (*s == '-' || *s == '\0') return false;
  unsigned long v = strtoul(s, &end, 10);
  if (*end != '\0' || errno != 0 || v > max) return false;
  *out = v;
  return true;
}

bool cli_parse_seconds(const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || errno != 0 || !(v >= 0) || isinf(v)) return false;
  if (strcmp(end, "ms") == 0) v /= 1000, end += 2;
  else if (strcmp(end, "s") == 0) end++;
  else if (strcmp(end, "m") == 0) v *= 60, end++;
  else if (strcmp(end, "h") == 0) v *= 3600, end++;
  if (*end != '\0') return false;
  *out = v;
  return true;
}

bool cli_default_cache_dir(char *buf, size_t size) {
  const char *d = getenv("TGRAPH_CACHE_DIR");
  if (d != NULL && *d != '\0') return (size_t)snprintf(buf, size, "%s", d) < size;
  d = getenv("XDG_CACHE_HOME");
  if (d != NULL && d[0] == '/')
    return (size_t)snprintf(buf, size, "%s/tgraph", d) < size;
  d = getenv("HOME");
  if (d != NULL && *d != '\0')
    return (size_t)snprintf(buf, size, "%s/.cache/tgraph", d) < size;
  return false;
}

void cli_json_string(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
    else if (*p == '\n') fputs("\\n", f);
    else if (*p == '\t') fputs("\\t", f);
    else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
    else fputc(*p, f);
  }
  fputc('"', f);
}

void cli_describe_value(const tg_value *v, char *buf, size_t size) {
  tg_type t = tg_value_type(v);
  size_t n = 0;
  switch (t) {
    case TG_NDARRAY: {
      n = (size_t)snprintf(buf, size, "ndarray %s [",
                           tg_dtype_name(tg_ndarray_dtype(v)));
      for (int d = 0; d < tg_ndarray_ndim(v) && n < size; d++)
        n += (size_t)snprintf(buf + n, size - n, "%s%lld", d ? ", " : "",
                              (long long)tg_ndarray_shape(v)[d]);
      if (n < size) snprintf(buf + n, size - n, "]");
      return;
    }
    case TG_LIST: snprintf(buf, size, "list of %zu", tg_list_len(v)); return;
    case TG_MAP: snprintf(buf, size, "map of %zu", tg_map_len(v)); return;
    case TG_STR: tg_str_data(v, &n); snprintf(buf, size, "str of %zu bytes", n); return;
    case TG_BYTES: tg_bytes_data(v, &n); snprintf(buf, size, "bytes, %zu", n); return;
    default: snprintf(buf, size, "%s", tg_type_name(t)); return;
  }
}

#ifndef TGRAPH_PLUGIN_DIR
#define TGRAPH_PLUGIN_DIR "/usr/local/lib/tgraph/plugins"
#endif

size_t cli_plugin_dirs(const char *dirs[], size_t max) {
  static char here[PATH_MAX + 32];
  size_t n = 0;
  ssize_t len = readlink("/proc/self/exe", here, PATH_MAX);
  if (len > 0 && max > n) {
    here[len] = '\0';
    char *slash = strrchr(here, '/');
    if (slash != NULL) {
      strcpy(slash, "/../examples/plugins");
      dirs[n++] = here;
    }
  }
  if (max > n) dirs[n++] = TGRAPH_PLUGIN_DIR;
  return n;
}

double cli_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}
