/* cli/run.c: `tgraph run GRAPH.json`: load the graph and its plugins,
 * open the cache, compute the outputs, print them as one JSON object on
 * stdout and a summary on stderr. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "tgraph/builtins.h"

static const char usage[] =
    "usage: tgraph run [options] GRAPH.json\n"
    "\n"
    "Compute the outputs of a graph.json and print them as one JSON object\n"
    "keyed by output name on stdout; a summary goes to stderr.\n"
    "\n"
    "options:\n"
    "  --scheduler NAME   sync, threads (default), processes or tcp\n"
    "  --workers N        worker count (default: one per CPU)\n"
    "  --connect ADDRS    tcp: workers, tcp://HOST:PORT[,...] (repeatable)\n"
    "  --workers-file FILE  tcp: workers, one address per line\n"
    "  --keys DIR         tcp: the client/ keys of 'tgraph keys generate';\n"
    "                     without it, only workers of this user are used\n"
    "  --cache-dir DIR    cache directory (default: $TGRAPH_CACHE_DIR,\n"
    "                     $XDG_CACHE_HOME/tgraph or ~/.cache/tgraph)\n"
    "  --no-cache         neither read nor write the cache\n"
    "  --plugin LIB.so    load a plugin (repeatable; also by name, see\n"
    "                     TGRAPH_PLUGIN_PATH)\n"
    "  --output DIR       also write each output to DIR/NAME.tgv (tg_dump)\n"
    "  --explain          dry run: which tasks the cache serves, which would\n"
    "                     run and why\n"
    "  --dot FILE         write the graph for Graphviz, nodes coloured by\n"
    "                     state (ran, cached, failed, skipped)\n"
    "  --trace FILE       write a Chrome trace-event JSON (Perfetto), one\n"
    "                     track per worker\n"
    "  --report FILE      write an HTML report of the run (one file: summary,\n"
    "                     task stream, critical path, failures, graph)\n"
    "  --timeout SECONDS  give up on the whole run after this long\n"
    "  --retries N        extra attempts for failing pure tasks (0 to 1000)\n"
    "  --max-graph-size SIZE  read at most this much of GRAPH.json (default\n"
    "                     1G); GRAPH.json may be a FIFO or pipe (-: stdin)\n"
    "  --dashboard[=ADDR] serve the report page live while the run goes, on\n"
    "                     127.0.0.1 and a free port; the URL (with its\n"
    "                     token) goes to stderr. ADDR (note the '='): PORT,\n"
    "                     HOST:PORT or [IPv6]:PORT; only an ADDR given here\n"
    "                     may be other than loopback\n"
    "  --dashboard-stay   keep serving after the run until Ctrl-C or SIGTERM\n"
    "                     (implies --dashboard)\n"
    "  --progress         show progress when stderr is a terminal (default)\n"
    "  --no-progress      never show progress\n"
    "  -q, --quiet        no summary, only errors\n"
    "  -v, --verbose      more detail (plugins, cache, per-task timings)\n"
    "  -h, --help         this help\n"
    "\n"
    "SIGINT (Ctrl-C) or SIGTERM stops the run, keeping what the cache stored;\n"
    "a second one stops at once.\n"
    "\n"
    "exit status: 0 success, 1 a task failed, 2 usage or graph error,\n"
    "130 interrupted by SIGINT, 143 by SIGTERM\n";

typedef struct run_opts {
  const char *graph, *scheduler, *cache_dir, *output, *dot, *trace, *keys;
  const char *report;
  cli_workers connect;
  const char **plugins;
  size_t nplugins;
  unsigned workers;
  int retries;
  size_t max_graph; /* bytes of GRAPH.json read at most (0: the default) */
  double timeout;
  bool no_cache, explain;
  int progress; /* -1 auto, 0 off */
  cli_dashboard dash;
} run_opts;

enum { O_SCHED = 256, O_WORKERS, O_CACHE_DIR, O_NO_CACHE, O_PLUGIN, O_OUTPUT,
       O_EXPLAIN, O_DOT, O_TRACE, O_TIMEOUT, O_RETRIES, O_PROGRESS,
       O_NO_PROGRESS, O_CONNECT, O_WORKERS_FILE, O_KEYS,
       O_MAX_GRAPH, O_REPORT, O_DASHBOARD, O_DASHBOARD_STAY };

static const struct option longopts[] = {
    {"scheduler", required_argument, NULL, O_SCHED},
    {"workers", required_argument, NULL, O_WORKERS},
    {"cache-dir", required_argument, NULL, O_CACHE_DIR},
    {"no-cache", no_argument, NULL, O_NO_CACHE},
    {"plugin", required_argument, NULL, O_PLUGIN},
    {"output", required_argument, NULL, O_OUTPUT},
    {"explain", no_argument, NULL, O_EXPLAIN},
    {"dot", required_argument, NULL, O_DOT},
    {"trace", required_argument, NULL, O_TRACE},
    {"report", required_argument, NULL, O_REPORT},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {"retries", required_argument, NULL, O_RETRIES},
    {"progress", no_argument, NULL, O_PROGRESS},
    {"no-progress", no_argument, NULL, O_NO_PROGRESS},
    {"connect", required_argument, NULL, O_CONNECT},
    {"workers-file", required_argument, NULL, O_WORKERS_FILE},
    {"keys", required_argument, NULL, O_KEYS},
    {"max-graph-size", required_argument, NULL, O_MAX_GRAPH},
    {"dashboard", optional_argument, NULL, O_DASHBOARD},
    {"dashboard-stay", no_argument, NULL, O_DASHBOARD_STAY},
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0}};


static const char *bad_arg; /* the argument getopt stopped at */

static int max_graph(run_opts *o, const char *arg) {
  uint64_t n;
  if (!cli_parse_size(arg, &n) || n == 0 || n > SIZE_MAX - 2)
    return cli_bad_usage("run", "--max-graph-size needs a size such as 64M or "
                         "4G, not '%s'", arg);
  o->max_graph = (size_t)n;
  return -1;
}

/* One option; returns -1 to go on, or an exit status. */
static int option(run_opts *o, int c) {
  unsigned long n;
  switch (c) {
    case O_SCHED: o->scheduler = optarg; break;
    case O_WORKERS:
      if (!cli_parse_uint(optarg, 4096, &n))
        return cli_bad_usage("run", "--workers needs a count from 0 to 4096, not '%s'",
                         optarg);
      o->workers = (unsigned)n;
      break;
    case O_CACHE_DIR: o->cache_dir = optarg; break;
    case O_NO_CACHE: o->no_cache = true; break;
    case O_PLUGIN: o->plugins[o->nplugins++] = optarg; break;
    case O_OUTPUT: o->output = optarg; break;
    case O_EXPLAIN: o->explain = true; break;
    case O_DOT: o->dot = optarg; break;
    case O_TRACE: o->trace = optarg; break;
    case O_REPORT: o->report = optarg; break;
    case O_TIMEOUT:
      if (!cli_parse_seconds(optarg, &o->timeout))
        return cli_bad_usage("run", "--timeout needs seconds (e.g. 30, 1.5, 500ms, 2m), "
                         "not '%s'", optarg);
      break;
    case O_RETRIES:
      if (!cli_parse_uint(optarg, TG_GRAPHJSON_RETRIES_MAX, &n))
        return cli_bad_usage("run", "--retries needs a count from 0 to %d, not '%s'",
                         TG_GRAPHJSON_RETRIES_MAX, optarg);
      o->retries = (int)n;
      break;
    case O_PROGRESS: o->progress = -1; break;
    case O_NO_PROGRESS: o->progress = 0; break;
    case O_CONNECT:
      if (cli_workers_add_list(&o->connect, optarg) != 0) return CLI_USAGE;
      break;
    case O_WORKERS_FILE:
      if (cli_workers_add_file(&o->connect, optarg) != 0) return CLI_USAGE;
      break;
    case O_KEYS: o->keys = optarg; break;
    case O_MAX_GRAPH: return max_graph(o, optarg);
    case O_DASHBOARD: return cli_dashboard_option(&o->dash, false, optarg);
    case O_DASHBOARD_STAY: return cli_dashboard_option(&o->dash, true, NULL);
    case 'q': cli_verbosity = -1; break;
    case 'v': cli_verbosity = 1; break;
    case 'h': fputs(usage, stdout); return CLI_OK;
    case ':': return cli_bad_usage("run", "option '%s' needs a value", bad_arg);
    default: return cli_bad_usage("run", "unknown option '%s'", bad_arg);
  }
  return -1;
}

static int parse_args(int argc, char **argv, run_opts *o) {
  o->plugins = calloc((size_t)argc + 1, sizeof *o->plugins);
  o->progress = -1;
  o->scheduler = "threads";
  int c;
  optind = 1;
  opterr = 0; /* our messages, not getopt's */
  while ((c = getopt_long(argc, argv, ":qvh", longopts, NULL)) != -1) {
    bad_arg = argv[optind - 1 < argc ? optind - 1 : argc - 1];
    int rc = option(o, c);
    if (rc >= 0) return rc;
  }
  if (optind >= argc) return cli_bad_usage("run", "%s", "missing GRAPH.json");
  if (optind + 1 < argc)
    return cli_bad_usage("run", "one graph at a time ('%s' is extra)%s", argv[optind + 1],
                         cli_dashboard_hint(&o->dash, argv[optind]));
  o->graph = argv[optind];
  return -1;
}

/* ---- the run ---- */

typedef struct run_state {
  run_opts o;
  tg_registry *reg;
  tg_graph *g;
  tg_graphjson_info *info;
  tg_cache *cache;
  const char *cache_warned; /* the cache warning last shown */
  char cache_dir[4096];
  bool *needed;
  cli_events ev;
  bool ev_ok;   /* ev records the run's task events */
  cli_progress *progress;
  tg_value **results;
} run_state;

/* "name" with '/' and leading dots made safe for a file name. */
static void file_name(const char *key, char *out, size_t size) {
  size_t n = 0;
  for (const char *p = key; *p && n + 1 < size; p++, n++)
    out[n] = (*p == '/' || (n == 0 && *p == '.')) ? '_' : *p;
  out[n] = '\0';
}

typedef struct out_name {
  char *name; /* the file name under --output */
  size_t i;   /* the output's index */
} out_name;

static int by_name(const void *a, const void *b) {
  const out_name *x = a, *y = b;
  int c = strcmp(x->name, y->name);
  return c != 0 ? c : (x->i > y->i) - (x->i < y->i);
}

/* Two outputs whose file names under --output would be one file ("a/b"
 * and "a_b"): an error naming both, before anything runs or is written.
 * Sorted, not compared pairwise: a graph may have many outputs. */
static int check_output_names(const run_state *s) {
  size_t n = s->info->noutputs, k = 0;
  out_name *v = calloc(n + 1, sizeof *v);
  int rc = v == NULL ? CLI_USAGE : -1;
  for (; rc < 0 && k < n; k++) {
    size_t size = strlen(s->info->outputs[k]) + 1;
    v[k].i = k;
    if ((v[k].name = malloc(size < 512 ? size : 512)) == NULL) rc = CLI_USAGE;
    else file_name(s->info->outputs[k], v[k].name, size < 512 ? size : 512);
  }
  if (rc >= 0) cli_error("out of memory");
  if (rc < 0) qsort(v, n, sizeof *v, by_name);
  for (size_t i = 1; rc < 0 && i < n; i++)
    if (strcmp(v[i - 1].name, v[i].name) == 0) {
      cli_error("outputs '%s' and '%s' would both be written to '%s/%s.tgv' "
                "(--output): rename one", s->info->outputs[v[i - 1].i],
                s->info->outputs[v[i].i], s->o.output, v[i].name);
      rc = CLI_USAGE;
    }
  for (size_t i = 0; i < k; i++) free(v[i].name);
  free(v);
  return rc;
}

static int load(run_state *s) {
  const char *dirs[4];
  size_t ndirs = cli_plugin_dirs(dirs, 4);
  tg_graphjson_opts go = {TG_GRAPHJSON_OPTS_V2, dirs, ndirs, s->o.plugins,
                          s->o.nplugins, false, s->o.max_graph};
  tg_error err;
  tg_error_clear(&err);
  if (tg_registry_new(&s->reg) != TG_OK || tg_registry_add_builtins(s->reg) != TG_OK) {
    cli_error("out of memory");
    return CLI_USAGE;
  }
  int rc = tg_graphjson_load(s->o.graph, s->reg, &go, &s->g, &s->info, &err);
  if (rc != TG_OK) {
    /* Graph errors already read FILE:LINE:COLUMN: what is wrong. */
    fprintf(stderr, "%s\n", err.msg);
    return CLI_USAGE;
  }
  for (size_t i = 0; cli_verbosity > 0 && i < s->info->nplugins; i++) {
    char hex[33];
    tg_digest_hex(s->info->plugins[i].digest, hex);
    cli_info("plugin %s: %zu functions, digest %s", s->info->plugins[i].path,
             s->info->plugins[i].nfuncs, hex);
  }
  s->needed = calloc(s->info->ntasks + 1, sizeof *s->needed);
  if (s->needed == NULL) return CLI_USAGE;
  cli_mark_needed(s->info, s->needed);
  return s->o.output ? check_output_names(s) : -1;
}

/* The cache's warning, unless it was shown already: once when opening
 * (read-only, damaged) and once more if storing failed during the run. */
static void show_cache_warning(run_state *s) {
  const char *w = s->cache ? tg_cache_warning(s->cache) : NULL;
  if (w == NULL || w == s->cache_warned) return;
  cli_warn("%s", w);
  s->cache_warned = w;
}

static int open_cache(run_state *s) {
  if (s->o.no_cache) return -1;
  bool given = s->o.cache_dir != NULL;
  if (given)
    snprintf(s->cache_dir, sizeof s->cache_dir, "%s", s->o.cache_dir);
  else if (!cli_default_cache_dir(s->cache_dir, sizeof s->cache_dir)) {
    cli_warn("no cache directory (set TGRAPH_CACHE_DIR or HOME); running "
             "without a cache");
    return -1;
  }
  tg_error err;
  tg_error_clear(&err);
  if (tg_cache_open(s->cache_dir, NULL, &s->cache, &err) != TG_OK) {
    if (given) {
      cli_error("cannot open the cache: %s", err.msg);
      return CLI_USAGE;
    }
    cli_warn("cannot open the cache, running without it: %s", err.msg);
    return -1;
  }
  show_cache_warning(s);
  if (cli_verbosity > 0) cli_info("cache: %s", s->cache_dir);
  return -1;
}

/* Record task events when something shows or writes them. */
static int start_watch(run_state *s) {
  bool show = s->o.progress != 0 && cli_verbosity >= 0 && isatty(2);
  if (!show && s->o.dot == NULL && s->o.trace == NULL && s->o.report == NULL &&
      !s->o.dash.on && cli_verbosity < 1)
    return -1;
  if (cli_events_init(&s->ev, s->info, s->needed, s->g) != TG_OK ||
      ((s->o.report || s->o.dash.on) && cli_report_start(&s->ev, s->g) != TG_OK)) {
    cli_events_free(&s->ev);
    cli_error("out of memory");
    return CLI_USAGE;
  }
  s->ev_ok = true;
  int rc = cli_dashboard_start(&s->o.dash, s->ev.report);
  if (rc >= 0) return rc;
  if (show) s->progress = cli_progress_start(&s->ev);
  return -1;
}

static int write_outputs(run_state *s) {
  if (mkdir(s->o.output, 0777) != 0 && errno != EEXIST) {
    cli_error("cannot create '%s': %s", s->o.output, strerror(errno));
    return CLI_USAGE;
  }
  for (size_t i = 0; i < s->info->noutputs; i++) {
    char name[512], path[4096 + 600];
    file_name(s->info->outputs[i], name, sizeof name);
    snprintf(path, sizeof path, "%s/%s.tgv", s->o.output, name);
    tg_error err;
    tg_error_clear(&err);
    if (tg_dump(s->results[i], path, NULL, &err) != TG_OK) {
      cli_error("cannot write '%s': %s", path, err.msg);
      return CLI_USAGE;
    }
    if (cli_verbosity > 0) cli_info("wrote %s", path);
  }
  return -1;
}

static int print_results(run_state *s) {
  tg_value *all = tg_map_new(s->info->noutputs);
  for (size_t i = 0; all != NULL && i < s->info->noutputs; i++)
    if (tg_map_put_c(all, s->info->outputs[i],
                     tg_value_ref(s->results[i])) != TG_OK) {
      tg_value_unref(all);
      all = NULL;
    }
  char *json = NULL;
  tg_error err;
  tg_error_clear(&err);
  int rc = all ? tg_value_to_json(all, isatty(1) ? TG_JSON_PRETTY : 0, &json,
                                  NULL, &err)
               : TG_ENOMEM;
  tg_value_unref(all);
  if (rc != TG_OK) {
    cli_error("cannot write the results as JSON: %s", err.msg);
    return CLI_USAGE;
  }
  fputs(json, stdout);
  fputc('\n', stdout);
  free(json);
  return fflush(stdout) == 0 ? -1 : CLI_USAGE;
}

/* The task a failing node belongs to (a tg.build node belongs to the task
 * whose argument it assembles). */
static uint32_t task_of_node(const run_state *s, tg_node n) {
  char key[600];
  if (n == TG_NODE_NONE || tg_node_key(s->g, n, key, sizeof key) < 0)
    return UINT32_MAX;
  char *cut = strstr(key, "/args[");
  for (int pass = 0; pass < 2; pass++) {
    for (size_t i = 0; i < s->info->ntasks; i++)
      if (strcmp(s->info->tasks[i].key, key) == 0) return (uint32_t)i;
    if (cut == NULL) break;
    *cut = '\0';
  }
  return UINT32_MAX;
}

static void summary(const run_state *s, const tg_compute_stats *st) {
  if (cli_verbosity < 0) return;
  cli_info("%zu task%s: %zu run, %zu cached, %zu failed in %.3f s",
           st->tasks_total, st->tasks_total == 1 ? "" : "s", st->tasks_run,
           st->tasks_cached, st->tasks_failed, st->wall_seconds);
  if (cli_verbosity < 1 || !s->ev_ok) return;
  for (size_t i = 0; i < s->ev.ncalls; i++) {
    const cli_call *c = &s->ev.calls[i];
    if (c->kind == TG_EVENT_CACHED || c->kind == TG_EVENT_SKIPPED)
      cli_info("  %-24s %s", c->key, c->kind == TG_EVENT_CACHED ? "cached" : "skipped");
    else
      cli_info("  %-24s worker %d  %.3f s%s", c->key, c->worker, c->end - c->start,
               c->status == TG_OK ? "" : "  failed");
  }
}

static int compute(run_state *s) {
  size_t n = s->info->noutputs;
  s->results = calloc(n + 1, sizeof *s->results);
  if (s->results == NULL) return CLI_USAGE;
  tg_compute_stats st;
  memset(&st, 0, sizeof st);
  tg_compute_opts co = {.version = TG_COMPUTE_OPTS_V2,
                        .scheduler = s->o.scheduler,
                        .workers = s->o.workers,
                        .timeout = s->o.timeout,
                        .retries = s->o.retries,
                        .cache = s->cache,
                        .stats = &st,
                        .on_event = s->ev_ok ? cli_events_on : NULL,
                        .event_ctx = &s->ev};
  tg_executor *remote = NULL;
  if (strcmp(s->o.scheduler, "tcp") == 0) {
    int urc = cli_workers_executor(&s->o.connect, s->o.keys, s->reg, &remote);
    if (urc >= 0) return urc;
    co.executor = remote;
  }
  if (cli_interrupt_start(&co.cancel) != TG_OK) return CLI_USAGE;
  int rc = tg_compute(s->g, s->info->output_nodes, n, &co, s->results);
  int sig = cli_interrupt_stop();
  if (remote) cli_workers_report(remote);
  tg_executor_free(remote);
  cli_progress_stop(s->progress);
  s->progress = NULL;
  if (s->ev_ok) cli_events_finish(&s->ev);
  if (s->ev.report)
    cli_report_finish(&s->ev, &(cli_run_facts){s->o.graph, s->o.scheduler,
                                                s->o.workers, rc, &st, s->g});
  show_cache_warning(s);
  if (rc == TG_EINVAL && st.tasks_run == 0 && st.failed_node == TG_NODE_NONE) {
    cli_error("%s", tg_graph_errmsg(s->g)); /* e.g. an unknown scheduler */
    return CLI_USAGE;
  }
  if (rc == TG_ECANCELED && sig) {
    cli_interrupt_report(&st, s->cache != NULL);
    return 128 + sig;
  }
  summary(s, &st);
  if (rc != TG_OK) {
    cli_error("%s", tg_graph_errmsg(s->g));
    uint32_t t = task_of_node(s, st.failed_node);
    if (t != UINT32_MAX) cli_print_blocked(s->info, t);
    return CLI_TASK_FAILED;
  }
  return -1;
}

static void report_files(run_state *s, int *status) {
  if (!s->ev_ok) return;
  int rc;
  if (s->o.dot && (rc = cli_write_dot(s->o.dot, s->info, &s->ev)) != TG_OK) {
    cli_error("cannot write '%s': %s", s->o.dot, tg_strerror(rc));
    if (*status == CLI_OK) *status = CLI_USAGE;
  }
  if (s->o.trace && (rc = cli_write_trace(s->o.trace, &s->ev)) != TG_OK) {
    cli_error("cannot write '%s': %s", s->o.trace, tg_strerror(rc));
    if (*status == CLI_OK) *status = CLI_USAGE;
  }
  if (s->o.report && cli_write_report(s->o.report, &s->ev) != TG_OK &&
      *status == CLI_OK)
    *status = CLI_USAGE;
}

static void cleanup(run_state *s) {
  cli_dashboard_stop(&s->o.dash);
  cli_progress_stop(s->progress);
  if (s->ev_ok) cli_events_free(&s->ev);
  for (size_t i = 0; s->results && i < s->info->noutputs; i++)
    tg_value_unref(s->results[i]);
  free(s->results);
  free(s->needed);
  tg_graphjson_info_free(s->info);
  tg_graph_free(s->g);
  tg_cache_close(s->cache);
  tg_registry_free(s->reg);
  free(s->o.plugins);
  cli_workers_free(&s->o.connect);
}

int cli_run(int argc, char **argv) {
  run_state s;
  memset(&s, 0, sizeof s);
  int rc = parse_args(argc, argv, &s.o);
  if (rc < 0) rc = load(&s);
  if (rc < 0) rc = open_cache(&s);
  if (rc < 0 && s.o.explain) {
    rc = cli_explain(s.info, s.needed, s.g, s.cache, s.cache_dir);
  } else if (rc < 0) {
    if ((rc = start_watch(&s)) < 0) rc = compute(&s);
    if (rc < 0 && s.o.output) rc = write_outputs(&s);
    if (rc < 0) rc = print_results(&s);
    if (rc < 0) rc = CLI_OK;
    if (s.info != NULL) report_files(&s, &rc);
    cli_dashboard_finish(&s.o.dash);
  }
  cleanup(&s);
  return rc;
}
