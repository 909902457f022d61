/* cli/run.c: `tgraph run GRAPH.json`: load the graph and its plugins,
 * open the cache, compute the outputs, print them as one JSON object on
 * stdout (or, with --output, write them to files and list those: see
 * output.c) and a summary on stderr. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "slurm.h"
#include "tgraph/builtins.h"

typedef struct run_opts {
  const char *graph, *scheduler, *cache_dir, *output, *dot, *trace, *keys;
  const char *report;
  cli_workers connect;
  cli_mpi mpi; /* --scheduler=mpi */
  const char **plugins;
  size_t nplugins;
  const char **job_opts; /* --job-opt, in order (slurm.job_opts) */
  unsigned workers;
  int retries;
  size_t max_graph; /* bytes of GRAPH.json read at most (0: the default) */
  double timeout;
  bool no_cache, explain, keep_going;
  bool cache_on_network_fs; /* --cache-on-network-fs */
  int progress; /* -1 auto, 0 off */
  cli_make make; /* --force, --min-compute, --cache-all, --check, --json */
  cli_dashboard dash;
  cli_slurm_run_opts slurm; /* --jobs, --job-opt, --run-dir */
} run_opts;

enum { O_SCHED = 1, O_WORKERS, O_CACHE_DIR, O_NO_CACHE, O_PLUGIN, O_OUTPUT,
       O_EXPLAIN, O_DOT, O_TRACE, O_TIMEOUT, O_RETRIES, O_PROGRESS,
       O_NO_PROGRESS, O_CONNECT, O_WORKERS_FILE, O_KEYS, O_JOIN_LISTEN,
       O_MAX_GRAPH, O_REPORT, O_DASHBOARD, O_DASHBOARD_STAY, O_CHECK, O_FORCE, O_MIN_COMPUTE, O_CACHE_ALL, O_JSON,
       O_QUIET, O_VERBOSE, O_KEEP_GOING, O_CACHE_NETWORK, O_JOBS, O_JOB_OPT,
       O_RUN_DIR, O_RANK_ADDRESS, O_RANK_TIMEOUT };

/* One line per option: {id, long name, letter, value name, help}. */
static const cli_opt options[] = {
    {O_SCHED, "scheduler", 0, "NAME", "sync, threads (default), processes, tcp, slurm\n"
                                      "(workers as batch jobs) or mpi (launched as N\n"
                                      "ranks by mpirun or srun: rank 0 drives, the\n"
                                      "others serve it)"},
    {O_WORKERS, "workers", 'j', "N", "worker count (default: one per CPU; mpi: threads\n"
                                     "per rank, default its CPU set)"},
    {O_CONNECT, "connect", 0, "ADDRS",
     "tcp: workers, tcp://HOST:PORT[,...] (repeatable)"},
    {O_WORKERS_FILE, "workers-file", 0, "FILE", "tcp: workers, one address per line"},
    {O_JOIN_LISTEN, "join-listen", 0, "tcp://HOST:PORT",
     "tcp: let workers started with 'tgraph worker\n"
     "--join ADDRESS' join the run while it goes (PORT\n"
     "0 picks one); prints 'joining workers: ADDRESS'\n"
     "on stderr. --connect is then optional"},
    {O_KEYS, "keys", 0, "DIR", "tcp: the client/ keys of 'tgraph keys generate';\n"
                               "without it, only workers of this user are used"},
    {O_JOBS, "jobs", 0, "N", "slurm: worker jobs to submit (one job array)"},
    {O_JOB_OPT, "job-opt", 0, "OPT", "slurm: an sbatch option for the worker jobs,\n"
                                     "e.g. --job-opt=--time=30 (repeatable)"},
    {O_RUN_DIR, "run-dir", 0, "DIR", "slurm, mpi: a run directory on a filesystem the\n"
                                     "nodes share. slurm: job script, keys, logs\n"
                                     "(default: ./tgraph-slurm-PID, removed after a\n"
                                     "successful run); mpi: where ranks meet when the\n"
                                     "launcher has no PMIx or PMI-1"},
    {O_RANK_ADDRESS, "rank-address", 0, "ADDR",
     "mpi: where ranks listen: an interface (eth0), host\nname or address (default: the "
     "host name's address,\nloopback on rank 0's host)"},
    {O_RANK_TIMEOUT, "rank-timeout", 0, "SECONDS",
     "mpi: wait this long for every rank (default 60)"},
    {O_CACHE_DIR, "cache-dir", 0, "DIR", "cache directory (default: $TGRAPH_CACHE_DIR,\n"
                                         "$XDG_CACHE_HOME/tgraph or ~/.cache/tgraph)"},
    {O_NO_CACHE, "no-cache", 0, NULL, "neither read nor write the cache"},
    {O_CACHE_NETWORK, "cache-on-network-fs", 0, NULL,
     "open the cache even on a network or FUSE file\nsystem (NFS, Lustre, GPFS, SMB...), where it may\n"
     "be corrupted (also TGRAPH_CACHE_ON_NETWORK_FS=1)"},
    {O_PLUGIN, "plugin", 0, "LIB.so", "load a plugin (repeatable; also by name, see\n"
                                      "TGRAPH_PLUGIN_PATH)"},
    {O_OUTPUT, "output", 0, "DIR", "write each output to DIR/NAME.tgv (tg_dump) and\n"
                                   "list them on stdout instead, one JSON object a\n"
                                   "line: key, file, bytes, type, and the value when\n"
                                   "its JSON is at most 1024 bytes"},
    {O_EXPLAIN, "explain", 0, NULL, "dry run: which tasks the cache serves, which would\n"
                                    "run and why"},
    {O_DOT, "dot", 0, "FILE", "write the graph for Graphviz, nodes coloured by\n"
                              "state (ran, cached, failed, skipped)"},
    {O_TRACE, "trace", 0, "FILE", "write a Chrome trace-event JSON (Perfetto), one\n"
                                  "track per worker"},
    {O_REPORT, "report", 0, "FILE", "write an HTML report of the run (one file: summary,\n"
                                    "task stream, critical path, failures, graph)"},
    {O_DASHBOARD, "dashboard", 0, "=ADDR",
     "serve the report live while the run goes, on\n"
     "127.0.0.1 and a free port unless ADDR (PORT,\n"
     "HOST:PORT, [::1]:PORT) says; prints its URL"},
    {O_DASHBOARD_STAY, "dashboard-stay", 0, NULL,
     "with --dashboard: keep serving after the run\nuntil Ctrl-C or SIGTERM"},
    {O_TIMEOUT, "timeout", 0, "SECONDS", "give up on the whole run after this long"},
    {O_RETRIES, "retries", 0, "N", "extra attempts for failing pure tasks (0 to 1000)"},
    {O_KEEP_GOING, "keep-going", 'k', NULL,
     "after a task fails, compute all that does not\ndepend on it; print the outputs "
     "computed and\nname the failed task of each other one"},
    {O_MAX_GRAPH, "max-graph-size", 0, "SIZE",
     "read at most this much of GRAPH.json (default 1G)"},
    {O_CHECK, "check", 0, NULL, "dry run for scripts: exit 0 when every output is\n"
                                "cached, 1 when something would run (make -q)"},
    {O_FORCE, "force", 0, "KEY", "recompute task KEY and everything after it, even\n"
                                 "if cached (repeatable)"},
    {O_MIN_COMPUTE, "min-compute", 0, "SECONDS",
     "store results of pure tasks that ran at least this\nlong (overrides the graph's)"},
    {O_CACHE_ALL, "cache-all", 0, NULL, "store every pure result, however fast"},
    {O_JSON, "json", 0, NULL, "with --explain: one JSON object on stdout"},
    {O_PROGRESS, "progress", 0, NULL, "show progress when stderr is a terminal (default)"},
    {O_NO_PROGRESS, "no-progress", 0, NULL, "never show progress"},
    {O_QUIET, "quiet", 'q', NULL, "no summary, only errors"},
    {O_VERBOSE, "verbose", 'v', NULL, "more detail (plugins, cache, per-task timings)"},
    {0, NULL, 0, NULL, NULL}};

static int option(void *ctx, int id, const char *value);

static const cli_cmd command = {
    .name = "run",
    .synopsis = "[options] GRAPH.json",
    .about = "Compute the outputs of a graph.json and print them as one JSON object\n"
             "keyed by output name on stdout (with --output, a list of the files\n"
             "written); a summary goes to stderr. GRAPH.json may be a FIFO or\n"
             "pipe; - is standard input.\n",
    .opts = options,
    .more = "SIGINT (Ctrl-C) or SIGTERM stops the run, keeping what the cache stored;\n"
            "a second one stops at once.\n"
            "\n"
            "exit status: 0 success, 1 a task failed (with -k: some outputs were\n"
            "not computed), 2 usage or graph error,\n"
            "130 interrupted by SIGINT, 143 by SIGTERM; with --check: 0 all cached,\n"
            "1 something would run, 2 usage or graph error\n",
    .set = option,
};

static int argc_max; /* the run's argc: the most repeats of an option */

static int max_graph(run_opts *o, const char *arg) {
  uint64_t n;
  if (!cli_parse_size(arg, &n) || n == 0 || n > SIZE_MAX - 2)
    return cli_bad_usage("run", "--max-graph-size needs a size such as 64M or "
                         "4G, not '%s'", arg);
  o->max_graph = (size_t)n;
  return -1;
}

/* One option; returns -1 to go on, or an exit status. */
static int option(void *ctx, int id, const char *optarg) {
  run_opts *o = ctx;
  unsigned long n;
  switch (id) {
    case O_SCHED: o->scheduler = optarg; break;
    case O_WORKERS:
      if (!cli_parse_uint(optarg, 4096, &n))
        return cli_bad_usage("run", "--workers needs a count from 0 to 4096, not '%s'",
                         optarg);
      o->workers = (unsigned)n;
      break;
    case O_CACHE_DIR: o->cache_dir = optarg; break;
    case O_NO_CACHE: o->no_cache = true; break;
    case O_CACHE_NETWORK: o->cache_on_network_fs = true; break;
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
    case O_KEEP_GOING: o->keep_going = true; break;
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
    case O_JOBS:
      if (!cli_parse_uint(optarg, 100000, &n) || n == 0)
        return cli_bad_usage("run", "--jobs needs a count from 1 to 100000, not '%s'", optarg);
      o->slurm.jobs = (unsigned)n;
      break;
    case O_JOB_OPT: o->job_opts[o->slurm.njob_opts++] = optarg; break;
    case O_RUN_DIR: /* one place the nodes share, whichever scheduler meets there */
      o->slurm.run_dir = optarg;
      o->mpi.run_dir = optarg;
      break;
    case O_JOIN_LISTEN: o->connect.join = optarg; break;
    case O_RANK_ADDRESS: o->mpi.address = optarg; break;
    case O_RANK_TIMEOUT:
      if (!cli_parse_seconds(optarg, &o->mpi.timeout) || o->mpi.timeout <= 0)
        return cli_bad_usage("run", "--rank-timeout needs seconds (e.g. 30, 1.5, 2m), "
                             "not '%s'", optarg);
      break;
    case O_MAX_GRAPH: return max_graph(o, optarg);
    case O_QUIET: cli_verbosity = -1; break;
    case O_VERBOSE: cli_verbosity = 1; break;
    case O_CHECK: o->make.check = true; break;
    case O_FORCE: return cli_make_force(&o->make, optarg, argc_max);
    case O_MIN_COMPUTE: return cli_make_min_compute(&o->make, optarg);
    case O_CACHE_ALL: o->make.cache_all = true; break;
    case O_JSON: o->make.json = true; break;
    case O_DASHBOARD: return cli_dashboard_option(&o->dash, false, optarg);
    case O_DASHBOARD_STAY: return cli_dashboard_option(&o->dash, true, NULL);
  }
  return -1;
}

static int parse_args(int argc, char **argv, run_opts *o) {
  o->plugins = calloc((size_t)argc + 1, sizeof *o->plugins);
  o->job_opts = calloc((size_t)argc + 1, sizeof *o->job_opts);
  o->slurm.job_opts = o->job_opts;
  argc_max = argc;
  o->progress = -1;
  o->scheduler = "threads";
  if (o->plugins == NULL || o->job_opts == NULL) return CLI_USAGE;
  char **args;
  int nargs, rc = cli_opts_parse(&command, argc, argv, o, &args, &nargs);
  if (rc >= 0) return rc;
  if (nargs == 0) rc = cli_bad_usage("run", "%s", "missing GRAPH.json");
  else if (nargs > 1)
    rc = cli_bad_usage("run", "one graph at a time ('%s' is extra)%s", args[1],
                       cli_dashboard_hint(&o->dash, args[0]));
  else o->graph = args[0];
  free(args);
  if (rc >= 0) return rc;
  if (o->make.json && !o->explain)
    return cli_bad_usage("run", "%s", "--json goes with --explain");
  if (o->make.check && o->explain)
    return cli_bad_usage("run", "%s", "--check and --explain: one dry run at a time");
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
  tg_value **results;
  tg_node *failed; /* --keep-going: per output, the failed task it lacks */
  bool kept_going; /* --keep-going: tasks failed, the other outputs printed */
  cli_slurm_run slurm; /* --scheduler=slurm */
} run_state;

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
    else cli_output_file_name(s->info->outputs[k], v[k].name, size < 512 ? size : 512);
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
  rc = cli_make_resolve(&s->o.make, s->info);
  if (rc >= 0) return rc;
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
  tg_cache_opts co;
  cli_make_cache_opts(&s->o.make, &co);
  co.allow_network_fs = s->o.cache_on_network_fs;
  int rc = tg_cache_open(s->cache_dir, &co, &s->cache, &err);
  if (rc != TG_OK) {
    /* A cache refused on a network file system, or a bad
     * TGRAPH_CACHE_ON_NETWORK_FS, is the user's to fix even for the
     * default directory: running without the cache would hide it. */
    if (given || rc == -EREMOTE || rc == TG_EINVAL) {
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

/* Record task events when something shows or writes them, or names the
 * failed tasks of outputs (--keep-going). */
static int start_watch(run_state *s) {
  bool record = s->o.dot != NULL || s->o.trace != NULL || cli_verbosity > 0 ||
                s->o.keep_going;
  bool report = s->o.report != NULL || s->o.dash.on;
  if (!record && !report) return -1;
  if (cli_events_init(&s->ev, s->info, s->needed, s->g, record) != TG_OK ||
      (report && cli_report_start(&s->ev, s->g) != TG_OK)) {
    cli_events_free(&s->ev);
    cli_error("out of memory");
    return CLI_USAGE;
  }
  s->ev_ok = true;
  int rc = cli_dashboard_start(&s->o.dash, s->ev.report);
  if (rc >= 0) return rc;
  return -1;
}

static int print_results(run_state *s) {
  tg_value *all = tg_map_new(s->info->noutputs);
  for (size_t i = 0; all != NULL && i < s->info->noutputs; i++)
    if (s->results[i] != NULL && /* NULL: failed (--keep-going) */
        tg_map_put_c(all, s->info->outputs[i],
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
  char more[64] = ""; /* only when there are some: the usual line stays short */
  if (st->tasks_cancelled)
    snprintf(more, sizeof more, ", %zu cancelled", st->tasks_cancelled);
  cli_info("%zu task%s: %zu run, %zu cached, %zu failed%s in %.3f s",
           st->tasks_total, st->tasks_total == 1 ? "" : "s", st->tasks_run,
           st->tasks_cached, st->tasks_failed, more, st->wall_seconds);
  if (cli_verbosity < 1 || !s->ev_ok) return;
  for (size_t i = 0; i < s->ev.ncalls; i++) {
    const cli_call *c = &s->ev.calls[i];
    if (c->task == UINT32_MAX) continue; /* part of a task (tg.build) */
    if (c->kind == TG_EVENT_CACHED || c->kind == TG_EVENT_SKIPPED)
      cli_info("  %-24s %s", c->key, c->kind == TG_EVENT_CACHED ? "cached" : "skipped");
    else
      cli_info("  %-24s worker %d  %.3f s%s", c->key, c->worker, c->end - c->start,
               c->kind == TG_EVENT_CANCELLED ? "  cancelled"
               : c->status == TG_OK          ? ""
                                             : "  failed");
  }
}

/* --keep-going: per output without a result, "OUTPUT: failed: TASK:
 * message" (the task's key and failure), or the compute's error when no
 * task is to blame (it stopped: a deadline, an interruption). */
static void print_failed_outputs(const run_state *s) {
  for (size_t i = 0; i < s->info->noutputs; i++) {
    if (s->results[i] != NULL) continue;
    uint32_t t = task_of_node(s, s->failed[i]);
    const cli_call *c = t != UINT32_MAX ? cli_events_failure(&s->ev, t) : NULL;
    if (c != NULL)
      cli_error("%s: failed: %s: %s: %s", s->info->outputs[i], c->key,
                tg_err_name(c->status), c->message ? c->message : tg_strerror(c->status));
    else if (t != UINT32_MAX)
      cli_error("%s: failed: %s", s->info->outputs[i], s->info->tasks[t].key);
    else
      cli_error("%s: failed: %s", s->info->outputs[i], tg_graph_errmsg(s->g));
  }
}

static int compute(run_state *s) {
  size_t n = s->info->noutputs;
  s->results = calloc(n + 1, sizeof *s->results);
  s->failed = calloc(n + 1, sizeof *s->failed);
  if (s->results == NULL || s->failed == NULL) return CLI_USAGE;
  tg_compute_stats st;
  memset(&st, 0, sizeof st);
  tg_compute_opts co = {.version = TG_COMPUTE_OPTS_V4,
                        .scheduler = s->o.scheduler,
                        .workers = s->o.workers,
                        .timeout = s->o.timeout,
                        .retries = s->o.retries,
                        .cache = s->cache,
                        .stats = &st,
                        .on_event = s->ev_ok ? cli_events_on : NULL,
                        .event_ctx = &s->ev,
                        .progress = s->o.progress != 0 && cli_verbosity >= 0,
                        .keep_going = s->o.keep_going,
                        .failed = s->failed};
  cli_make_compute_opts(&s->o.make, &co);
  tg_executor *remote = NULL;
  if (strcmp(s->o.scheduler, "tcp") == 0) {
    int urc = cli_workers_executor(&s->o.connect, s->o.keys, s->reg, &remote);
    if (urc >= 0) return urc;
    co.executor = remote;
  } else if (strcmp(s->o.scheduler, "mpi") == 0) {
    int urc = cli_mpi_executor(&s->o.mpi, s->o.workers, s->reg, s->info, &remote);
    if (urc >= 0) return urc;
    co.executor = remote;
  }
  if (cli_interrupt_start(&co.cancel) != TG_OK) return CLI_USAGE;
  if (strcmp(s->o.scheduler, "slurm") == 0) {
    s->o.slurm.join_listen = s->o.connect.join;
    int urc = cli_slurm_run_start(&s->slurm, &s->o.slurm, s->info, s->reg, co.cancel,
                                  &remote);
    if (urc >= 0) {
      cli_interrupt_stop();
      tg_executor_free(remote);
      cli_slurm_run_finish(&s->slurm, false);
      return urc;
    }
    co.executor = remote;
    co.scheduler = "tcp";
  } else if (s->o.slurm.jobs || s->o.slurm.njob_opts ||
             (s->o.slurm.run_dir && strcmp(s->o.scheduler, "mpi") != 0)) {
    cli_interrupt_stop();
    return cli_bad_usage("run", "--jobs and --job-opt go with --scheduler=slurm, --run-dir "
                                "with --scheduler=slurm or mpi");
  }
  int rc = tg_compute(s->g, s->info->output_nodes, n, &co, s->results);
  int sig = cli_interrupt_stop();
  bool gave_up = cli_slurm_run_gave_up(&s->slurm); /* its watcher reads remote */
  if (remote) cli_workers_report(remote);
  tg_executor_free(remote);
  if (gave_up) {
    cli_slurm_run_finish(&s->slurm, false);
    return CLI_TASK_FAILED;
  }
  cli_slurm_run_finish(&s->slurm, rc == TG_OK);
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
  if (rc == TG_ETASK && s->o.keep_going) { /* the outputs computed are printed */
    print_failed_outputs(s);
    s->kept_going = true;
    return -1;
  }
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
  if (s->ev_ok) cli_events_free(&s->ev);
  for (size_t i = 0; s->results && i < s->info->noutputs; i++)
    tg_value_unref(s->results[i]);
  free(s->results);
  free(s->failed);
  free(s->needed);
  tg_graphjson_info_free(s->info);
  tg_graph_free(s->g);
  tg_cache_close(s->cache);
  tg_registry_free(s->reg);
  cli_slurm_run_finish(&s->slurm, false);
  free(s->o.plugins);
  free(s->o.job_opts);
  cli_make_free(&s->o.make);
  cli_workers_free(&s->o.connect);
}

int cli_run(int argc, char **argv) {
  run_state s;
  memset(&s, 0, sizeof s);
  int rc = parse_args(argc, argv, &s.o);
  unsigned rank = 0;
  if (rc < 0 && strcmp(s.o.scheduler, "mpi") == 0 && (rc = cli_mpi_rank(&rank)) < 0 &&
      rank != 0) {
    rc = cli_mpi_serve(&s.o.mpi, s.o.workers, rank); /* returns only on errors */
    cleanup(&s);
    return rc;
  }
  if (rc < 0) rc = load(&s);
  if (rc < 0) rc = open_cache(&s);
  if (rc < 0 && (s.o.explain || s.o.make.check)) {
    rc = cli_explain(s.info, s.needed, s.g, s.cache, s.cache_dir, &s.o.make,
                     s.o.make.check  ? CLI_EXPLAIN_CHECK
                     : s.o.make.json ? CLI_EXPLAIN_JSON
                                     : CLI_EXPLAIN_TEXT);
  } else if (rc < 0) {
    if ((rc = start_watch(&s)) < 0) rc = compute(&s);
    if (rc < 0 && s.o.output)
      rc = cli_output_write(s.o.output, s.info, s.results);
    else if (rc < 0)
      rc = print_results(&s);
    if (rc < 0) rc = s.kept_going ? CLI_TASK_FAILED : CLI_OK;
    if (s.info != NULL) report_files(&s, &rc);
    cli_dashboard_finish(&s.o.dash);
  }
  cleanup(&s);
  return rc;
}
