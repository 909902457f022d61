/* cli/keys.c: `tgraph keys generate DIR`: the CURVE key pairs workers and
 * runs authenticate each other with. */
#include <string.h>

#include "cli.h"
#include "tgraph/remote.h"

static const char usage[] =
    "usage: tgraph keys generate DIR\n"
    "\n"
    "Write new keys into DIR (created with mode 0700):\n"
    "  server.key, server.pub   the workers' pair\n"
    "  client.key, client.pub   the runs' pair\n"
    "  authorized_clients       client keys workers accept (client.pub)\n"
    "Secret keys get mode 0600; existing keys are never overwritten.\n"
    "Workers take --keys DIR (server.*, authorized_clients); runs take\n"
    "--keys DIR (client.*, server.pub). To admit another client, append its\n"
    "client.pub line to the workers' authorized_clients.\n";

int cli_keys(int argc, char **argv) {
  if (argc > 1 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
    fputs(usage, stdout);
    return CLI_OK;
  }
  if (argc != 3 || strcmp(argv[1], "generate") != 0) {
    fprintf(stderr, "tgraph keys: expected 'generate DIR'\n\n%s", usage);
    return CLI_USAGE;
  }
  tg_error err;
  tg_error_clear(&err);
  if (tg_keys_generate(argv[2], &err) != TG_OK) {
    cli_error("%s", err.msg);
    return CLI_USAGE;
  }
  cli_info("wrote keys to %s (server.key, server.pub, client.key, client.pub, "
           "authorized_clients)", argv[2]);
  return CLI_OK;
}
