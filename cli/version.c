/* cli/version.c: `tgraph version`. */
#include <string.h>

#include "cli.h"
#include "tgraph/serial.h"

#ifndef TGRAPH_VERSION
#define TGRAPH_VERSION "unknown"
#endif

int cli_version(int argc, char **argv) {
  if (argc > 1 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
    fputs("usage: tgraph version\n\nPrint the versions of tgraph and of the "
          "formats it reads and writes.\n", stdout);
    return CLI_OK;
  }
  if (argc > 1) {
    fprintf(stderr, "tgraph version: unexpected argument '%s'\n", argv[1]);
    return CLI_USAGE;
  }
  printf("tgraph %s\n", TGRAPH_VERSION);
  printf("graph.json format 1\n");
  printf("dump format %d\n", TG_FORMAT_VERSION);
  return CLI_OK;
}
