/* cli/version.c: `tgraph version`. */
#include <stdlib.h>

#include "cli.h"
#include "tgraph/serial.h"

#ifndef TGRAPH_VERSION
#define TGRAPH_VERSION "unknown"
#endif

static const cli_cmd command = {
    .name = "version",
    .synopsis = "",
    .about = "Print the versions of tgraph and of the formats it reads and writes.\n",
};

int cli_version(int argc, char **argv) {
  char **args = NULL;
  int nargs = 0, rc = cli_opts_parse(&command, argc, argv, NULL, &args, &nargs);
  if (rc < 0) rc = cli_opts_count(&command, args, nargs, 0, 0, "");
  free(args);
  if (rc >= 0) return rc;
  printf("tgraph %s\n", TGRAPH_VERSION);
  printf("graph.json format 1\n");
  printf("dump format %d\n", TG_FORMAT_VERSION);
  return CLI_OK;
}
