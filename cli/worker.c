/* cli/worker.c: `tgraph worker`: serve the builtins and the given plugins'
 * functions to runs that connect (tgraph run --scheduler=tcp), until
 * SIGINT or SIGTERM. */
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "tgraph/builtins.h"
#include "tgraph/plugin.h"
#include "tgraph/remote.h"

static const char usage[] =
    "usage: tgraph worker [options]\n"
    "\n"
    "Serve task functions to runs on other machines (tgraph run\n"
    "--scheduler=tcp --connect ADDRESS). Prints 'listening on ADDRESS' on\n"
    "stdout once ready; stops on SIGINT or SIGTERM.\n"
    "\n"
    "options:\n"
    "  --listen tcp://HOST:PORT  address (default " TG_WORKER_DEFAULT_LISTEN ");\n"
    "                     PORT * picks a free one. Any HOST but loopback\n"
    "                     needs --keys\n"
    "  --nthreads N       threads running tasks (default: one per CPU)\n"
    "  --plugin LIB.so    load a plugin (repeatable; also by name, see\n"
    "                     TGRAPH_PLUGIN_PATH)\n"
    "  --keys DIR         the worker/ keys of 'tgraph keys generate': accept\n"
    "                     only clients in DIR/authorized_clients. Without\n"
    "                     it, only runs of this worker's user get in\n"
    "  --max-message SIZE largest message part accepted, and most bytes of\n"
    "                     large values a client may have streamed in and not\n"
    "                     yet used (default: parts up to 2G, streams as memory\n"
    "                     allows)\n"
    "  --max-pending SIZE most bytes of large values all clients together may\n"
    "                     have streamed in that the worker still holds (in\n"
    "                     queued or running tasks, or stored); past it a\n"
    "                     client's value is refused and the client dropped\n"
    "                     (default: 8 x --max-message, at least 64M and at\n"
    "                     most a quarter of the memory; without\n"
    "                     --max-message a quarter of the memory)\n"
    "  --session-timeout SECONDS\n"
    "                     drop a silent client's state after this long (20)\n"
    "  -v, --verbose      a line per client, refusal and drop on stderr\n"
    "  -q, --quiet        nothing on stdout\n"
    "  -h, --help         this help\n"
    "\n"
    "exit status: 0 stopped by a signal, 2 bad options or cannot listen\n";

enum { O_LISTEN = 256, O_NTHREADS, O_PLUGIN, O_KEYS, O_MAXMSG, O_MAXPEND, O_TIMEOUT };

static const struct option longopts[] = {
    {"listen", required_argument, NULL, O_LISTEN},
    {"nthreads", required_argument, NULL, O_NTHREADS},
    {"plugin", required_argument, NULL, O_PLUGIN},
    {"keys", required_argument, NULL, O_KEYS},
    {"max-message", required_argument, NULL, O_MAXMSG},
    {"max-pending", required_argument, NULL, O_MAXPEND},
    {"session-timeout", required_argument, NULL, O_TIMEOUT},
    {"verbose", no_argument, NULL, 'v'},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0}};

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig) {
  (void)sig;
  stop_flag = 1;
}


static void on_ready(void *ctx, const char *endpoint) {
  if (*(bool *)ctx) return; /* quiet */
  printf("listening on %s\n", endpoint);
  fflush(stdout);
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

static int parse(int argc, char **argv, tg_worker_opts *o, const char **plugins,
                 size_t *nplugins, bool *quiet) {
  unsigned long n;
  double secs;
  uint64_t size;
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":vqh", longopts, NULL)) != -1) {
    const char *bad = argv[optind - 1 < argc ? optind - 1 : argc - 1];
    switch (c) {
      case O_LISTEN: o->listen = optarg; break;
      case O_NTHREADS:
        if (!cli_parse_uint(optarg, 4096, &n))
          return cli_bad_usage("worker", "--nthreads needs a count from 0 to 4096, not '%s'",
                               optarg);
        o->nthreads = (unsigned)n;
        break;
      case O_PLUGIN: plugins[(*nplugins)++] = optarg; break;
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
      case 'v': o->verbose = 1; break;
      case 'q': *quiet = true; break;
      case 'h': fputs(usage, stdout); return CLI_OK;
      case ':': return cli_bad_usage("worker", "option '%s' needs a value", bad);
      default: return cli_bad_usage("worker", "unknown option '%s'", bad);
    }
  }
  if (optind < argc) return cli_bad_usage("worker", "unexpected argument '%s'", argv[optind]);
  return -1;
}

int cli_worker(int argc, char **argv) {
  tg_worker_opts o = {.version = TG_WORKER_OPTS_V2};
  const char **plugins = calloc((size_t)argc + 1, sizeof *plugins);
  size_t nplugins = 0;
  bool quiet = false;
  tg_registry *reg = NULL;
  if (!plugins) return CLI_USAGE;
  int rc = parse(argc, argv, &o, plugins, &nplugins, &quiet);
  if (rc < 0 && (tg_registry_new(&reg) != TG_OK || tg_registry_add_builtins(reg) != TG_OK)) {
    cli_error("out of memory");
    rc = CLI_USAGE;
  }
  if (rc < 0) rc = load_plugins(reg, plugins, nplugins);
  if (rc < 0) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    o.stop = &stop_flag;
    o.on_ready = on_ready;
    o.ctx = &quiet;
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
  free(plugins);
  return rc;
}
