/* cli/opts.c: the one option parser of every subcommand. A command
 * declares its options as a table (cli_opt) and the parser runs
 * getopt_long over it: options may come before, between or after the
 * arguments, "--" ends them, "-" is an argument (standard input), and
 * every mistake gets one message naming the argument at fault. The same
 * table prints `tgraph CMD --help`, so the help cannot drift from what
 * is accepted. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum { HELP_VAL = 1000, LONG_ONLY_VAL = 256 };

static size_t table_len(const cli_opt *t) {
  size_t n = 0;
  while (t != NULL && t[n].name != NULL) n++;
  return n;
}

/* Entry i of the command's options followed by the inherited ones. */
static const cli_opt *entry(const cli_cmd *cmd, size_t i) {
  size_t own = table_len(cmd->opts);
  return i < own ? &cmd->opts[i] : &cmd->inherited[i - own];
}

/* The entry getopt_long reported as val, or NULL. */
static const cli_opt *by_val(const cli_cmd *cmd, int val, size_t n) {
  if (val >= LONG_ONLY_VAL && (size_t)(val - LONG_ONLY_VAL) < n)
    return entry(cmd, (size_t)(val - LONG_ONLY_VAL));
  for (size_t i = 0; val > 0 && i < n; i++)
    if (entry(cmd, i)->letter == val) return entry(cmd, i);
  return NULL;
}

/* ---- help ---- */

/* "-j, --workers N" into buf; its length. */
static size_t spelling(const cli_opt *o, char *buf, size_t size) {
  bool optional = o->value && o->value[0] == '=';
  int n = snprintf(buf, size, "%c%c%s--%s%s%s%s", o->letter ? '-' : ' ',
                   o->letter ? o->letter : ' ', o->letter ? ", " : "  ", o->name,
                   !o->value ? "" : optional ? "[=" : " ",
                   o->value ? o->value + optional : "", optional ? "]" : "");
  return n < 0 ? 0 : (size_t)n;
}

static void help_lines(FILE *f, const cli_opt *t, size_t col) {
  for (size_t i = 0; t != NULL && t[i].name != NULL; i++) {
    char left[128];
    size_t len = spelling(&t[i], left, sizeof left);
    fprintf(f, "  %s", left);
    const char *h = t[i].help;
    if (2 + len + 2 > col) fprintf(f, "\n%*s", (int)col, ""); /* too long: own line */
    else fprintf(f, "%*s", (int)(col - 2 - len), "");
    for (const char *nl; (nl = strchr(h, '\n')) != NULL; h = nl + 1)
      fprintf(f, "%.*s\n%*s", (int)(nl - h), h, (int)col, "");
    fprintf(f, "%s\n", h);
  }
}

void cli_opts_help(const cli_cmd *cmd, FILE *f) {
  fprintf(f, "usage: tgraph %s%s%s\n", cmd->name, *cmd->synopsis ? " " : "",
          cmd->synopsis);
  if (cmd->about) fprintf(f, "\n%s", cmd->about);
  size_t n = table_len(cmd->opts) + table_len(cmd->inherited), col = 0;
  for (size_t i = 0; i < n; i++) {
    char left[128];
    size_t len = spelling(entry(cmd, i), left, sizeof left) + 4;
    if (len <= 26 && len > col) col = len; /* longer ones go on their own line */
  }
  if (col < 16) col = 16;
  fprintf(f, "\noptions:\n");
  help_lines(f, cmd->opts, col);
  help_lines(f, cmd->inherited, col);
  help_lines(f, (const cli_opt[]){{0, "help", 'h', NULL, "this help"}, {0}}, col);
  if (cmd->more) fprintf(f, "\n%s", cmd->more);
}

/* ---- parsing ---- */

/* getopt_long's tables for cmd: longs (n + 2 entries) and the short
 * option letters. */
static void getopt_tables(const cli_cmd *cmd, size_t n, struct option *longs,
                          char *shorts) {
  size_t k = 0;
  /* '+': options end at the first argument (a subcommand follows);
   * '-': arguments come back in order as option 1, wherever they are,
   * also under POSIXLY_CORRECT. ':': a missing value is ':'. */
  shorts[k++] = cmd->stop_at_arg ? '+' : '-';
  shorts[k++] = ':';
  for (size_t i = 0; i < n; i++) {
    const cli_opt *o = entry(cmd, i);
    int has = !o->value ? no_argument
              : o->value[0] == '=' ? optional_argument
                                   : required_argument;
    longs[i] = (struct option){o->name, has, NULL,
                               o->letter ? o->letter : LONG_ONLY_VAL + (int)i};
    if (o->letter) {
      shorts[k++] = o->letter;
      if (o->value) shorts[k++] = ':';
      if (o->value && o->value[0] == '=') shorts[k++] = ':'; /* "j::" */
    }
  }
  longs[n] = (struct option){"help", no_argument, NULL, HELP_VAL};
  longs[n + 1] = (struct option){NULL, 0, NULL, 0};
  shorts[k++] = 'h';
  shorts[k] = '\0';
}

/* The message for what getopt_long refused (c is '?' or ':'); CLI_USAGE.
 * getopt_long has moved past a long option and past the last letter of a
 * group of short ones ("-qj"), but not past a letter inside a group:
 * argv[optind - 1] is the argument only where that is certain. */
static int refused(const cli_cmd *cmd, size_t n, int c, char **argv) {
  const cli_opt *o = by_val(cmd, optopt, n);
  const char *last = argv[optind - 1];
  if (c == ':' && o != NULL) { /* either moved past: the last one read */
    if (strncmp(last, "--", 2) == 0)
      return cli_bad_usage(cmd->name, "option '--%s' needs a value", o->name);
    return cli_bad_usage(cmd->name, "option '-%c' needs a value", o->letter);
  }
  /* A known option refused can only be a flag given "--flag=VALUE". */
  if (o != NULL) return cli_bad_usage(cmd->name, "option '--%s' takes no value", o->name);
  if (optopt == HELP_VAL) return cli_bad_usage(cmd->name, "option '--help' takes no value");
  if (optopt > 0) return cli_bad_usage(cmd->name, "unknown option '-%c'", optopt);
  /* An unknown long option (optopt 0): moved past it. getopt_long takes
   * a unique abbreviation ("--verb"), so this may be one of several. */
  int len = (int)strcspn(last, "=");
  char also[256] = "";
  size_t k = 0, matches = 0;
  for (size_t i = 0; i < n && len > 2; i++)
    if (strncmp(entry(cmd, i)->name, last + 2, (size_t)len - 2) == 0 && k < sizeof also) {
      int w = snprintf(also + k, sizeof also - k, "%s--%s", matches++ ? ", " : "",
                       entry(cmd, i)->name);
      k += w > 0 ? (size_t)w : 0;
    }
  if (matches > 1)
    return cli_bad_usage(cmd->name, "option '%.*s' is ambiguous (%s)", len, last, also);
  return cli_bad_usage(cmd->name, "unknown option '%.*s'", len, last);
}

int cli_opts_parse(const cli_cmd *cmd, int argc, char **argv, void *ctx,
                   char ***args, int *nargs) {
  size_t n = table_len(cmd->opts) + table_len(cmd->inherited);
  struct option *longs = calloc(n + 2, sizeof *longs);
  char *shorts = malloc(2 * n + 8);
  char **left = calloc((size_t)argc + 1, sizeof *left);
  if (longs == NULL || shorts == NULL || left == NULL) {
    free(longs), free(shorts), free(left);
    cli_error("out of memory");
    return CLI_USAGE;
  }
  getopt_tables(cmd, n, longs, shorts);
  int rc = -1, c, k = 0;
  optind = 0; /* glibc: start over, also after a parse with other options */
  opterr = 0; /* our messages, not getopt's */
  while (rc < 0 && (c = getopt_long(argc, argv, shorts, longs, NULL)) != -1) {
    if (c == 1) left[k++] = optarg;
    else if (c == HELP_VAL || c == 'h') rc = (cli_opts_help(cmd, stdout), CLI_OK);
    else if (c == '?' || c == ':') rc = refused(cmd, n, c, argv);
    else rc = cmd->set(ctx, by_val(cmd, c, n)->id, optarg);
  }
  while (rc < 0 && optind < argc) left[k++] = argv[optind++]; /* after "--" or '+' */
  free(longs);
  free(shorts);
  if (rc >= 0) {
    free(left);
    return rc;
  }
  *args = left;
  *nargs = k;
  return -1;
}

int cli_opts_count(const cli_cmd *cmd, char **args, int nargs, int min, int max,
                   const char *missing) {
  if (nargs < min) return cli_bad_usage(cmd->name, "missing %s", missing);
  if (max >= 0 && nargs > max)
    return cli_bad_usage(cmd->name, "unexpected argument '%s'", args[max]);
  return -1;
}
