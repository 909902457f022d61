/* cli/keys.c: `tgraph keys generate DIR`: the CURVE key pairs workers and
 * runs authenticate each other with. */
#include <string.h>

#include "cli.h"
#include "tgraph/remote.h"

static const char usage[] =
    "usage: tgraph keys generate DIR\n"
    "\n"
    "Write new keys into two directories (mode 0700):\n"
    "  DIR/worker/  for the workers only: copy it to each worker host\n"
    "    worker.key            the workers' secret key\n"
    "    authorized_clients    public keys of the runs they serve\n"
    "  DIR/client/  for the hosts that run graphs\n"
    "    client.key            the runs' secret key\n"
    "    client.pub            its public key\n"
    "    worker.pub            the workers' public key: runs accept only a\n"
    "                          worker holding worker.key\n"
    "Secret keys get mode 0600; existing keys are never overwritten.\n"
    "Workers take --keys DIR/worker, runs take --keys DIR/client; a host\n"
    "holding DIR/client cannot pose as a worker. To admit another set of\n"
    "runs, append their client.pub line to the workers' authorized_clients.\n"
    "Without --keys, workers and runs use a key of their user made on first\n"
    "use ($XDG_STATE_HOME/tgraph/keys, default ~/.local/state/tgraph/keys):\n"
    "a worker serves only its own user, a run uses only its own user's.\n";

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
  cli_info("wrote keys: %s/worker (worker.key, authorized_clients) for the workers, "
           "%s/client (client.key, client.pub, worker.pub) for the runs", argv[2], argv[2]);
  return CLI_OK;
}
