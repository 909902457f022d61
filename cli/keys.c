/* cli/keys.c: `tgraph keys generate DIR`: the CURVE key pairs workers and
 * runs authenticate each other with. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tgraph/remote.h"

static const char about[] =
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

static const cli_cmd command = {
    .name = "keys",
    .synopsis = "generate DIR",
    .about = about,
};

/* -1 when args are "generate DIR", else CLI_USAGE (said). */
static int check_args(char **args, int nargs) {
  if (nargs == 0) return cli_bad_usage("keys", "missing 'generate DIR'");
  if (strcmp(args[0], "generate") != 0)
    return cli_bad_usage("keys", "unknown command '%s' (expected 'generate DIR')", args[0]);
  return cli_opts_count(&command, args, nargs, 2, 2, "DIR");
}

int cli_keys(int argc, char **argv) {
  char **args = NULL;
  int nargs = 0, rc = cli_opts_parse(&command, argc, argv, NULL, &args, &nargs);
  if (rc < 0) rc = check_args(args, nargs);
  if (rc < 0) {
    tg_error err;
    tg_error_clear(&err);
    if (tg_keys_generate(args[1], &err) != TG_OK) {
      cli_error("%s", err.msg);
      rc = CLI_USAGE;
    } else {
      cli_info("wrote keys: %s/worker (worker.key, authorized_clients) for the "
               "workers, %s/client (client.key, client.pub, worker.pub) for the runs",
               args[1], args[1]);
      rc = CLI_OK;
    }
  }
  free(args);
  return rc;
}
