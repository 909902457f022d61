/* cli/main.c: the tgraph program: dispatch to a subcommand. */
#include <signal.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "usage: tgraph COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  run GRAPH.json     compute a graph's outputs (tgraph run --help)\n"
    "  inspect FILE       show what a dump file holds\n"
    "  cache info|list|check|clear|prune  look after the result cache\n"
    "  worker             serve task functions to remote runs\n"
    "  keys generate DIR  make keys for workers and runs\n"
    "  code-id FILE...    a source's code id, for tg_func_def.code_id\n"
    "  version            versions of tgraph and its formats\n"
    "\n"
    "tgraph COMMAND --help shows a command's options.\n";

typedef struct command {
  const char *name;
  int (*fn)(int argc, char **argv);
} command;

static const command commands[] = {
    {"run", cli_run},
    {"inspect", cli_inspect},
    {"cache", cli_cache},
    {"worker", cli_worker},
    {"keys", cli_keys},
    {"code-id", cli_code_id},
    {"version", cli_version},
};

int main(int argc, char **argv) {
  /* A closed stdout must be an error we report, not a silent death. */
  signal(SIGPIPE, SIG_IGN);
  /* Likewise a file size limit (ulimit -f): writes past it fail with
   * EFBIG, which the cache reports as results not being stored. */
  signal(SIGXFSZ, SIG_IGN);
  if (argc < 2) {
    fputs(usage, stderr);
    return CLI_USAGE;
  }
  if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
      strcmp(argv[1], "help") == 0) {
    fputs(usage, stdout);
    return CLI_OK;
  }
  if (strcmp(argv[1], "--version") == 0) return cli_version(1, argv + 1);
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(argv[1], commands[i].name) == 0)
      return commands[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "tgraph: unknown command '%s'\n\n%s", argv[1], usage);
  return CLI_USAGE;
}
