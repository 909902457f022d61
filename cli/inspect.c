/* cli/inspect.c: `tgraph inspect FILE`: what a dump file holds: its type,
 * shape, size and a JSON preview. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "tgraph/readfile.h"

typedef struct inspect_opts {
  bool whole;
  unsigned long preview;
  size_t max_input; /* bytes read from standard input at most */
} inspect_opts;

enum { O_JSON = 1, O_PREVIEW, O_MAX_INPUT };

static const cli_opt options[] = {
    {O_JSON, "json", 0, NULL, "print the whole value as JSON instead"},
    {O_PREVIEW, "preview", 0, "N", "characters of JSON preview (default 400)"},
    {O_MAX_INPUT, "max-input", 0, "SIZE", "read at most this much of standard input\n"
                                          "(FILE -; default 1G)"},
    {0, NULL, 0, NULL, NULL}};

static int option(void *ctx, int id, const char *value) {
  inspect_opts *o = ctx;
  uint64_t size;
  switch (id) {
    case O_JSON: o->whole = true; break;
    case O_PREVIEW:
      if (!cli_parse_uint(value, 1u << 30, &o->preview))
        return cli_bad_usage("inspect", "--preview needs a count of characters, not '%s'",
                             value);
      break;
    case O_MAX_INPUT:
      if (!cli_parse_size(value, &size) || size == 0 || size > SIZE_MAX - 2)
        return cli_bad_usage("inspect", "--max-input needs a size such as 64M or 4G, "
                             "not '%s'", value);
      o->max_input = (size_t)size;
      break;
  }
  return -1;
}

static const cli_cmd command = {
    .name = "inspect",
    .synopsis = "[options] FILE",
    .about = "Show the value in a dump file (written by tg_dump or tgraph run\n"
             "--output): its type, shape, size and a JSON preview. FILE - reads\n"
             "standard input.\n",
    .opts = options,
    .set = option,
};

/* The value in path, or on standard input for "-" (read whole, bounded:
 * a pipe cannot be mapped). */
static int load(const char *path, const inspect_opts *o, tg_value **v, uint64_t *size,
                tg_error *err) {
  struct stat st;
  if (strcmp(path, "-") != 0) {
    *size = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
    return tg_load(path, TG_LOAD_MMAP, v, err);
  }
  char *buf;
  size_t len;
  int rc = tg_read_file("/dev/stdin", "standard input", o->max_input, &buf, &len, err);
  if (rc != TG_OK) return rc;
  *size = len;
  rc = tg_decode(buf, len, v, err);
  free(buf);
  return rc;
}

int cli_inspect(int argc, char **argv) {
  inspect_opts o = {false, 400, (size_t)1 << 30};
  char **args = NULL;
  int nargs = 0, rc = cli_opts_parse(&command, argc, argv, &o, &args, &nargs);
  if (rc < 0) rc = cli_opts_count(&command, args, nargs, 1, 1, "FILE");
  if (rc >= 0) {
    free(args);
    return rc;
  }
  const char *path = args[0];
  tg_value *v;
  uint64_t fsize_bytes = 0;
  tg_error err;
  tg_error_clear(&err);
  if (load(path, &o, &v, &fsize_bytes, &err) != TG_OK) {
    cli_error("%s", err.msg); /* the message names the file already */
    free(args);
    return CLI_TASK_FAILED;
  }
  char *json = NULL;
  size_t len = 0;
  rc = tg_value_to_json(v, o.whole ? TG_JSON_PRETTY : 0, &json, &len, &err);
  if (rc == TG_OK && o.whole) {
    printf("%s\n", json);
  } else if (rc == TG_OK) {
    char what[256], fsize[32];
    cli_describe_value(v, what, sizeof what);
    printf("file:    %s (%s)\n", path,
           cli_format_size(fsize_bytes, fsize, sizeof fsize));
    printf("type:    %s\n", what);
    if (tg_value_type(v) == TG_NDARRAY)
      printf("data:    %s\n", cli_format_size(tg_ndarray_nbytes(v), fsize,
                                              sizeof fsize));
    size_t cut = len < o.preview ? len : o.preview;
    while (cut > 0 && cut < len && ((unsigned char)json[cut] & 0xC0) == 0x80)
      cut--; /* do not split a UTF-8 sequence */
    printf("preview: %.*s%s\n", (int)cut, json, len > cut ? " ..." : "");
  } else {
    cli_error("%s: cannot show it as JSON: %s", path, err.msg);
  }
  free(json);
  tg_value_unref(v);
  free(args);
  return rc == TG_OK ? CLI_OK : CLI_TASK_FAILED;
}
