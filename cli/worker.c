/* cli/worker.c: `tgraph worker`: serve the builtins and the given plugins'
 * functions to runs that connect (tgraph run --scheduler=tcp) or that it
 * joins (--join), until SIGINT, or leave them (drain) on SIGTERM or
 * SIGUSR1. */
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "slurm.h"
#include "tgraph/builtins.h"
#include "tgraph/plugin.h"
#include "tgraph/remote.h"

enum { O_LISTEN = 1, O_NTHREADS, O_PLUGIN, O_KEYS, O_MAXMSG, O_MAXPEND, O_TIMEOUT,
       O_VERBOSE, O_QUIET, O_JOIN, O_ADVERTISE, O_DRAIN_TIME };

static const cli_opt options[] = {
    {O_LISTEN, "listen", 0, "tcp://HOST:PORT",
     "address (default " TG_WORKER_DEFAULT_LISTEN ");\n"
     "PORT * picks a free one. Any HOST but loopback\n"
     "needs --keys"},
    {O_NTHREADS, "nthreads", 'j', "N", "threads running tasks (default: one per CPU)"},
    {O_PLUGIN, "plugin", 0, "LIB.so", "load a plugin (repeatable; also by name, see\n"
                                      "TGRAPH_PLUGIN_PATH)"},
    {O_KEYS, "keys", 0, "DIR", "the worker/ keys of 'tgraph keys generate': accept\n"
                               "only clients in DIR/authorized_clients. Without\n"
                               "it, only runs of this worker's user get in"},
    {O_MAXMSG, "max-message", 0, "SIZE",
     "largest message part accepted, and most bytes of\n"
     "large values a client may have streamed in and not\n"
     "yet used (default: parts up to 2G, streams as memory\n"
     "allows)"},
    {O_MAXPEND, "max-pending", 0, "SIZE",
     "most bytes of large values all clients together may\n"
     "have streamed in that the worker still holds (in\n"
     "queued or running tasks, or stored); past it a\n"
     "client's value is refused and the client dropped\n"
     "(default: 8 x --max-message, at least 64M and at\n"
     "most a quarter of the memory; without\n"
     "--max-message a quarter of the memory)"},
    {O_TIMEOUT, "session-timeout", 0, "SECONDS",
     "drop a silent client's state after this long (20)"},
    {O_JOIN, "join", 0, "ADDRESS",
     "join the run listening there (tgraph run\n"
     "--join-listen): register this worker's address\n"
     "with it (--listen defaults to a free loopback\n"
     "port)"},
    {O_ADVERTISE, "advertise", 0, "tcp://HOST:PORT",
     "with --join: the address the run is to connect\n"
     "to (default: the one listened on)"},
    {O_DRAIN_TIME, "drain-time", 0, "SECONDS",
     "when told to leave by SIGUSR1, go on taking the\n"
     "tasks a run expects to end within this time, then\n"
     "leave (default 0: take nothing new; SIGTERM takes\n"
     "nothing new either way). In a Slurm job\n"
     "(SLURM_JOB_ID set), the job's time left (squeue)\n"
     "when shorter"},
    {O_VERBOSE, "verbose", 'v', NULL, "a line per client, refusal and drop on stderr"},
    {O_QUIET, "quiet", 'q', NULL, "nothing on stdout"},
    {0, NULL, 0, NULL, NULL}};

/* What the options set. */
typedef struct worker_args {
  tg_worker_opts *o;
  const char **plugins;
  size_t nplugins;
  bool quiet;
} worker_args;

static int option(void *ctx, int id, const char *optarg) {
  worker_args *a = ctx;
  tg_worker_opts *o = a->o;
  unsigned long n;
  double secs;
  uint64_t size;
  switch (id) {
    case O_LISTEN: o->listen = optarg; break;
    case O_NTHREADS:
      if (!cli_parse_uint(optarg, 4096, &n))
        return cli_bad_usage("worker", "--nthreads needs a count from 0 to 4096, not '%s'",
                             optarg);
      o->nthreads = (unsigned)n;
      break;
    case O_PLUGIN: a->plugins[a->nplugins++] = optarg; break;
    case O_KEYS: o->keys_dir = optarg; break;
    case O_MAXMSG:
      if (!cli_parse_size(optarg, &size) || size == 0 || size > INT32_MAX)
        return cli_bad_usage("worker", "--max-message needs a size up to 2G, not '%s'", optarg);
      o->max_message = (size_t)size;
      break;
    case O_MAXPEND:
      if (!cli_parse_size(optarg, &size) || size == 0)
        return cli_bad_usage("worker", "--max-pending needs a size above 0, not '%s'",
                             optarg);
      o->max_pending = size;
      break;
    case O_TIMEOUT:
      if (!cli_parse_seconds(optarg, &secs) || secs <= 0)
        return cli_bad_usage("worker", "--session-timeout needs seconds, not '%s'", optarg);
      o->session_timeout = secs;
      break;
    case O_JOIN: o->join = optarg; break;
    case O_ADVERTISE: o->advertise = optarg; break;
    case O_DRAIN_TIME:
      if (!cli_parse_seconds(optarg, &secs))
        return cli_bad_usage("worker", "--drain-time needs seconds, not '%s'", optarg);
      o->drain_time = secs;
      break;
    case O_VERBOSE: o->verbose = 1; break;
    case O_QUIET: a->quiet = true; break;
  }
  return -1;
}

static const cli_cmd command = {
    .name = "worker",
    .synopsis = "[options]",
    .about = "Serve task functions to runs on other machines (tgraph run\n"
             "--scheduler=tcp --connect ADDRESS), or join a run that is going\n"
             "(--join ADDRESS). Prints 'listening on ADDRESS' on stdout once ready.\n"
             "SIGINT stops at once; SIGTERM or SIGUSR1 leaves: no new task (or,\n"
             "on SIGUSR1 with --drain-time, only those expected to end in time), those\n"
             "running finish, runs fetch the results they need, then exit 0 (a\n"
             "second SIGTERM stops at once).\n",
    .opts = options,
    .more = "exit status: 0 stopped or left on a signal, 2 bad options, cannot listen,\n"
            "or the run given to --join refused this worker or did not answer\n",
    .set = option,
};

/* drain_now: the drain came with SIGTERM, which says the end is now (a
 * batch system's cancel or time limit, SIGKILL a few seconds later):
 * no new task whatever --drain-time says. SIGUSR1 is the early warning
 * (sbatch --signal) that --drain-time is for. */
static volatile sig_atomic_t stop_flag, drain_flag, drain_now;

static void on_signal(int sig) {
  if (sig == SIGINT || (sig == SIGTERM && drain_flag)) {
    stop_flag = 1;
  } else {
    if (sig == SIGTERM) drain_now = 1;
    drain_flag = 1;
  }
}


static void on_ready(void *ctx, const char *endpoint) {
  if (((worker_args *)ctx)->quiet) return;
  printf("listening on %s\n", endpoint);
  fflush(stdout);
}

/* When the drain begins (once): 0 after SIGTERM; in a Slurm job, its
 * time left (a time limit lowered mid-job warns with less than sbatch
 * --signal's lead left); -1 outside one or when Slurm does not say (then
 * --drain-time holds). */
static double time_left(void *ctx) {
  const worker_args *a = ctx;
  if (drain_now) return 0;
  const char *job = getenv("SLURM_JOB_ID");
  if (!job || !*job) return -1;
  double secs;
  char why[512];
  if (cli_slurm_time_left(job, &secs, why, sizeof why)) {
    if (a->o->verbose)
      fprintf(stderr, "tgraph worker: Slurm job %s has %.0f s left\n", job, secs);
    return secs;
  }
  if (a->o->verbose)
    fprintf(stderr, "tgraph worker: cannot read Slurm job %s's time left (%s): using "
            "--drain-time %g s\n", job, why, a->o->drain_time);
  return -1;
}

/* A plugin given by name: lib<name>.so in TGRAPH_PLUGIN_PATH or the
 * default directories. Paths (with '/') are used as they are. */
static const char *plugin_path(const char *p, char *buf, size_t size) {
  if (strchr(p, '/')) return p;
  const char *dirs[8];
  size_t n = 0;
  char env[4096];
  const char *e = getenv("TGRAPH_PLUGIN_PATH");
  snprintf(env, sizeof env, "%s", e ? e : "");
  for (char *save, *d = strtok_r(env, ":", &save); d && n < 4; d = strtok_r(NULL, ":", &save))
    dirs[n++] = d;
  n += cli_plugin_dirs(dirs + n, 8 - n);
  for (size_t i = 0; i < n; i++) {
    snprintf(buf, size, "%s/lib%s.so", dirs[i], p);
    if (access(buf, R_OK) == 0) return buf;
  }
  return p;
}

static int load_plugins(tg_registry *reg, const char **plugins, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char buf[PATH_MAX + 300];
    tg_error err;
    tg_error_clear(&err);
    if (tg_registry_load_plugin(reg, plugin_path(plugins[i], buf, sizeof buf), &err) != TG_OK) {
      cli_error("%s", err.msg); /* it names the plugin */
      return CLI_USAGE;
    }
  }
  return -1;
}

static int parse(int argc, char **argv, worker_args *a) {
  char **args = NULL;
  int nargs = 0, rc = cli_opts_parse(&command, argc, argv, a, &args, &nargs);
  if (rc < 0) rc = cli_opts_count(&command, args, nargs, 0, 0, "");
  free(args);
  return rc;
}

int cli_worker(int argc, char **argv) {
  tg_worker_opts o = {.version = TG_WORKER_OPTS_V4};
  worker_args a = {&o, calloc((size_t)argc + 1, sizeof *a.plugins), 0, false};
  tg_registry *reg = NULL;
  if (!a.plugins) return CLI_USAGE;
  int rc = parse(argc, argv, &a);
  if (rc < 0 && (tg_registry_new(&reg) != TG_OK || tg_registry_add_builtins(reg) != TG_OK)) {
    cli_error("out of memory");
    rc = CLI_USAGE;
  }
  if (rc < 0) rc = load_plugins(reg, a.plugins, a.nplugins);
  if (rc < 0) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    o.stop = &stop_flag;
    o.drain = &drain_flag;
    if (o.join && !o.listen) o.listen = "tcp://127.0.0.1:*";
    o.on_ready = on_ready;
    o.time_left = time_left;
    o.ctx = &a;
    tg_error err;
    tg_error_clear(&err);
    if (tg_worker_serve(reg, &o, &err) != TG_OK) {
      cli_error("%s", err.msg);
      rc = CLI_USAGE;
    } else {
      rc = CLI_OK;
    }
  }
  tg_registry_free(reg);
  free(a.plugins);
  return rc;
}
