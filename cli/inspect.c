/* cli/inspect.c: `tgraph inspect FILE`: what a dump file holds: its type,
 * shape, size and a JSON preview. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static const char usage[] =
    "usage: tgraph inspect [options] FILE\n"
    "\n"
    "Show the value in a dump file (written by tg_dump or tgraph run\n"
    "--output): its type, shape, size and a JSON preview.\n"
    "\n"
    "options:\n"
    "  --json        print the whole value as JSON instead\n"
    "  --preview N   characters of JSON preview (default 400)\n"
    "  -h, --help    this help\n";

int cli_inspect(int argc, char **argv) {
  const char *path = NULL;
  bool whole = false;
  unsigned long preview = 400;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      fputs(usage, stdout);
      return CLI_OK;
    } else if (strcmp(argv[i], "--json") == 0) {
      whole = true;
    } else if (strcmp(argv[i], "--preview") == 0 && i + 1 < argc &&
               cli_parse_uint(argv[i + 1], 1u << 30, &preview)) {
      i++;
    } else if (argv[i][0] == '-' || path != NULL) {
      return cli_bad_usage("inspect", "unexpected '%s'", argv[i]);
    } else {
      path = argv[i];
    }
  }
  if (path == NULL) {
    return cli_bad_usage("inspect", "missing FILE");
  }
  tg_value *v;
  tg_error err;
  tg_error_clear(&err);
  if (tg_load(path, TG_LOAD_MMAP, &v, &err) != TG_OK) {
    cli_error("%s", err.msg); /* the message names the file already */
    return CLI_TASK_FAILED;
  }
  char *json = NULL;
  size_t len = 0;
  int rc = tg_value_to_json(v, whole ? TG_JSON_PRETTY : 0, &json, &len, &err);
  if (rc == TG_OK && whole) {
    printf("%s\n", json);
  } else if (rc == TG_OK) {
    struct stat st;
    char what[256], fsize[32];
    cli_describe_value(v, what, sizeof what);
    printf("file:    %s (%s)\n", path,
           cli_format_size(stat(path, &st) == 0 ? (uint64_t)st.st_size : 0,
                           fsize, sizeof fsize));
    printf("type:    %s\n", what);
    if (tg_value_type(v) == TG_NDARRAY)
      printf("data:    %s\n", cli_format_size(tg_ndarray_nbytes(v), fsize,
                                              sizeof fsize));
    size_t cut = len < preview ? len : preview;
    while (cut > 0 && cut < len && ((unsigned char)json[cut] & 0xC0) == 0x80)
      cut--; /* do not split a UTF-8 sequence */
    printf("preview: %.*s%s\n", (int)cut, json, len > cut ? " ..." : "");
  } else {
    cli_error("%s: cannot show it as JSON: %s", path, err.msg);
  }
  free(json);
  tg_value_unref(v);
  return rc == TG_OK ? CLI_OK : CLI_TASK_FAILED;
}
